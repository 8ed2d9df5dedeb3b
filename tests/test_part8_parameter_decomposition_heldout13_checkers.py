"""Proofs for part 8's checkers, fifteenth file: the eighteenth fresh held-out measurement. A leaky sigmoid backward
that is not grad_output times a slope (alpha added, the magnitude dropped) is said before any region is described;
a residual appended as an extra SVD term, W centred before the SVD, an ablation that zeroes a column, uses W_0's own
SVD or ignores `terms`, a residual connection in the importance MLP, relative MSE, a NaN from (g - eps)^p, a median
over the batch and a projection onto [init, 1] are named; a history of iterates and one delta mask are described as
observed."""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import solutions.part8_parameter_decomposition as ref
import tests.part8_parameter_decomposition as checks
import tests.part8_parameter_decomposition_slips as slips
from tests.proving import assert_fails

EIN = "batch inst d_in, inst d_out d_in -> batch inst d_out"


def _leaky(lower: bool, leak):
    inside = lambda x, g: ((x >= 0) & (x <= 1)).to(g.dtype)
    return slips.learner_sigmoid(lambda x, a, g: torch.where(x < 0 if lower else x > 1, leak(g, a), g * inside(x, g)))


def test_leak_added_to_grad_output_is_not_a_slope():
    failure = assert_fails(
        checks.test_lower_leaky_hard_sigmoid, _leaky(True, lambda g, a: g + a), "not_grad_times_slope"
    )
    assert "alpha (0.03) is added below 0" in failure.hint and "changes with x" not in failure.hint
    failure = assert_fails(
        checks.test_upper_leaky_hard_sigmoid, _leaky(False, lambda g, a: g + a), "not_grad_times_slope"
    )
    assert "above 1" in failure.hint


def test_leak_with_magnitude_dropped_is_not_a_slope():
    fn = _leaky(False, lambda g, a: a * g.sign())
    failure = assert_fails(checks.test_upper_leaky_hard_sigmoid, fn, "not_grad_times_slope")
    assert "doubling grad_output leaves it unchanged above 1" in failure.hint


def _svd(W):
    U, S, Vh = torch.linalg.svd(W, full_matrices=False)
    return einops.einsum(U, S, Vh, "inst d_out r, inst r, inst r d_in -> inst r d_out d_in")


def test_svd_residual_appended_is_named():
    fn = lambda W: torch.cat([_svd(W), (W - _svd(W).sum(1))[:, None]], dim=1)
    failure = assert_fails(checks.test_svd_terms, fn, "residual_term")
    assert "W minus the sum of the others" in failure.message


def test_svd_of_centred_W_is_named():
    failure = assert_fails(checks.test_svd_terms, lambda W: _svd(W - W.mean(-1, keepdim=True)), "changed_before_svd")
    assert "W minus its row means" in failure.hint


def _abl(make_W):
    def fn(chain, terms, x):
        original, out = chain(x), []
        for k in range(terms.shape[1]):
            Wk = make_W(chain, terms, k)
            layer_fn = lambda n, a, Wk=Wk: einops.einsum(a, Wk if n == 0 else chain.weights[n], EIN)
            out.append((chain(x, layer_fn) - original).pow(2).mean(-1))
        return einops.rearrange(torch.stack(out), "k batch inst -> inst k batch")

    return fn


def _zero_col(chain, terms, k):
    W = chain.weights[0].clone()
    W[:, :, k % W.shape[-1]] = 0
    return W


def test_ablation_zeroing_a_column_or_own_svd_is_named():
    assert_fails(checks.test_ablation_losses, _abl(_zero_col), "zeroed_column")
    own = lambda c, t, k: c.weights[0] - ref.svd_terms(c.weights[0])[:, k % 2]
    assert_fails(checks.test_ablation_losses, _abl(own), "own_svd_terms")


def test_ablation_ignoring_terms_is_observed():
    fixed = lambda c, t, k: c.weights[0] - 0.3 * torch.ones_like(t[:, k])
    failure = assert_fails(checks.test_ablation_losses, _abl(fixed), "ignores_terms")
    assert "don't change when `terms` changes" in failure.hint


def test_ci_residual_connection_is_named():
    class CI(ref.CausalImportance):
        def forward(self, a, V):
            h = einops.einsum(a, V, "batch inst d_in, inst C d_in -> batch inst C")
            z = (F.gelu(h[..., None] * self.w_in + self.b_in) * self.w_out).sum(-1) + self.b_out + h
            return ref.LowerLeakyHardSigmoid.apply(z, self.alpha), ref.UpperLeakyHardSigmoid.apply(z, self.alpha)

    assert_fails(checks.test_causal_importance, CI, "residual")


def test_recon_relative_mse_is_named():
    def fn(chain, U, V, x, masks, dms):
        target, L = chain(x), len(chain.weights)

        def loss(layers):
            def layer_fn(n, a):
                if n in layers:
                    return ref.masked_product(a, chain.weights[n], U[n], V[n], masks[n], dms[n])
                return einops.einsum(a, chain.weights[n], EIN)

            return ((chain(x, layer_fn) - target).pow(2).mean((0, 2)) / target.pow(2).mean((0, 2))).sum()

        return loss(set(range(L))), sum(loss({m}) for m in range(L)) / L

    assert_fails(checks.test_stochastic_reconstruction_losses, fn, "relative_mse")


def test_minimality_nan_and_median_are_named():
    fn = lambda cis, p, eps=1e-12: sum((g - eps).pow(p).sum(-1) for g in cis).mean(0).sum()
    failure = assert_fails(checks.test_importance_minimality_loss, fn, "not_finite")
    assert failure.hint and "negative base to a fractional power" in failure.hint and "g - eps < 0" in failure.hint
    median = lambda cis, p, eps=1e-12: sum((g + eps).pow(p).sum(-1) for g in cis).median(0).values.sum()
    assert "median" in assert_fails(checks.test_importance_minimality_loss, median, "batch_reduction").hint


def _adv(history=False, low=False):
    def fn(loss_fn, init, n_steps, step_size):
        src, lows, hist = [s.detach().clone() for s in init], [s.detach().clone() for s in init], []
        for _ in range(n_steps):
            src = [s.requires_grad_(True) for s in src]
            grads = torch.autograd.grad(loss_fn(src), src)
            with torch.no_grad():
                src = [(s + step_size * g.sign()).clamp(0, 1) for s, g in zip(src, grads, strict=True)]
                src = [torch.maximum(s, lo) for s, lo in zip(src, lows, strict=True)] if low else src
            hist.append([s.detach() for s in src])
        return hist if history else [s.detach() for s in src]

    return fn


def test_adversarial_init_bound_and_history():
    assert_fails(checks.test_adversarial_sources, _adv(low=True), "init_lower_bound")
    failure = assert_fails(checks.test_adversarial_sources, _adv(history=True), "extra_value")
    assert "asked for" not in failure.message and "are lists of 2 tensors" in failure.message


def test_one_delta_mask_is_described():
    fn = lambda cis: ([g + (1 - g) * torch.rand_like(g) for g in cis], [torch.rand(cis[0].shape[:-1])])
    failure = assert_fails(checks.test_sample_masks, fn, "delta_missing")
    assert "one delta mask was returned where one per matrix (2) was asked" in failure.hint
