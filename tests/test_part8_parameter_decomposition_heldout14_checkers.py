"""Proofs for part 8's checkers, sixteenth file: the nineteenth fresh held-out measurement. An ablation that skips
the last term (K ± 1 matches no input size), a faithfulness loss with // N, and delta masks sized by the number of
matrices are named without a wrong-axis story; a detached layer input and a wrong default alpha are caught; a
multiplicative removal, the change measured before the last bias, instance 0's weights or V for every instance, V
detached in V a, the delta mask's role swapped, zero delta masks in the layerwise runs, eps outside the log, the batch
divided out twice and a leak applied twice (alpha²) are named; a PGD ε-ball is listed among the causes."""

from __future__ import annotations

import einops
import torch

import solutions.part8_parameter_decomposition as ref
import tests.part8_parameter_decomposition as checks
from tests.proving import assert_fails

EIN = "batch inst d_in, inst d_out d_in -> batch inst d_out"


def _abl(chain, terms, x, make_W, K=None):
    original = chain(x)
    out = []
    for k in range(terms.shape[1] if K is None else K):
        Wk = make_W(chain, terms, k)
        run = chain(x, lambda n, a, Wk=Wk: einops.einsum(a, Wk if n == 0 else chain.weights[n], EIN))
        out.append(run - original)
    return einops.rearrange(torch.stack(out).pow(2).mean(-1), "k batch inst -> inst k batch")


def test_ablation_skipping_the_last_term_is_an_off_by_one():
    impl = lambda c, t, x: _abl(c, t, x, lambda ch, te, k: ch.weights[0] - te[:, k], K=t.shape[1] - 1)
    failure = assert_fails(checks.test_ablation_losses, impl, "off_by_one")
    assert "one fewer than 10" in failure.message and "range(n - 1)" in failure.hint


def test_ablation_multiplicative_removal_named():
    impl = lambda c, t, x: _abl(c, t, x, lambda ch, te, k: ch.weights[0] * (1 - te[:, k]))
    assert_fails(checks.test_ablation_losses, impl, "multiplicative_removal")


def test_ablation_measured_before_the_last_bias_named():
    def impl(chain, terms, x):
        def last(W0):
            seen = {}

            def layer_fn(n, a):
                seen[n] = einops.einsum(a, W0 if n == 0 else chain.weights[n], EIN)
                return seen[n]

            chain(x, layer_fn)
            return seen[len(chain.weights) - 1]

        out = [(last(chain.weights[0] - terms[:, k]) - last(chain.weights[0])).pow(2).mean(-1) for k in range(10)]
        return einops.rearrange(torch.stack(out), "k batch inst -> inst k batch")

    assert_fails(checks.test_ablation_losses, impl, "measured_before_output")


def _se(weights, U, V, first=lambda W: W):
    return sum((first(W) - u @ v).pow(2).sum((-2, -1)) for W, u, v in zip(weights, U, V, strict=True))


def test_faithfulness_floor_division_named():
    impl = lambda w, U, V: (_se(w, U, V) // sum(W[0].numel() for W in w)).sum()
    failure = assert_fails(checks.test_faithfulness_loss, impl, "floor_division")
    assert "integer division" in failure.hint


def test_faithfulness_whole_number_described():
    impl = lambda w, U, V: (3 * _se(w, U, V) / sum(W[0].numel() for W in w)).sum().round()  # no floor of the loss
    assert_fails(checks.test_faithfulness_loss, impl, "integer_result")


def test_faithfulness_instance0_weights_named():
    impl = lambda w, U, V: (_se(w, U, V, lambda W: W[0]) / sum(W[0].numel() for W in w)).sum()
    assert_fails(checks.test_faithfulness_loss, impl, "instance0_weights")


def _leaky(lower: bool, default: float, twice: bool = False):
    class Leaky(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, alpha=default):
            ctx.save_for_backward(x)
            ctx.alpha = alpha
            return x.clamp(0, 1)

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            a = ctx.alpha**2 if twice else ctx.alpha
            inside = ((x >= 0) & (x <= 1)).to(g.dtype)
            return torch.where(x < 0 if lower else x > 1, g * a, g * inside), None

    return Leaky


def test_leaky_wrong_default_alpha_caught():
    assert_fails(checks.test_lower_leaky_hard_sigmoid, _leaky(True, 0.1), "alpha_default")
    assert_fails(checks.test_upper_leaky_hard_sigmoid, _leaky(False, 0.1), "alpha_default")


def test_leaky_without_default_accepted():
    class NoDefault(ref.LowerLeakyHardSigmoid):
        @staticmethod
        def forward(ctx, x, alpha):
            return ref.LowerLeakyHardSigmoid.forward(ctx, x, alpha)

    checks.test_lower_leaky_hard_sigmoid(NoDefault)  # the notebook always passes alpha: no default is no mistake


def test_leak_applied_twice_names_alpha_squared():
    failure = assert_fails(checks.test_lower_leaky_hard_sigmoid, _leaky(True, 0.01, True), "slope_regions")
    assert "alpha²" in failure.hint


def test_ci_instance0_V_named():
    class CI(ref.CausalImportance):
        def forward(self, a, V):
            return super().forward(a, V[:1].expand_as(V))

    assert_fails(checks.test_causal_importance, CI, "instance0_params")


def test_delta_masks_sized_by_the_number_of_matrices_named():
    def impl(cis):
        return [g + (1 - g) * torch.rand_like(g) for g in cis], [torch.rand(len(cis), g.shape[1]) for g in cis]

    failure = assert_fails(checks.test_sample_masks, impl, "shape")
    assert "len(causal_importances), the number of matrices" in failure.hint


def _mp(a, W, U, V, mask, dm, detach_a=False, detach_V=False, swapped=False):
    a = a.detach() if detach_a else a
    inner = einops.einsum(a, V.detach() if detach_V else V, "batch inst d_in, inst C d_in -> batch inst C")
    out = einops.einsum(inner * mask, U, "batch inst C, inst d_out C -> batch inst d_out")
    delta = einops.einsum(a, W - U @ V, EIN)
    return dm[..., None] * out + delta if swapped else out + dm[..., None] * delta


def test_masked_product_detached_input_caught():
    assert_fails(checks.test_masked_product, lambda *p: _mp(*p, detach_a=True), "input_detached")


def test_masked_product_V_detached_in_the_pieces_named():
    failure = assert_fails(checks.test_masked_product, lambda *p: _mp(*p, detach_V=True), "detached")
    assert "V.detach()" in failure.hint


def test_masked_product_delta_mask_roles_named():
    assert_fails(checks.test_masked_product, lambda *p: _mp(*p, swapped=True), "delta_mask_roles")


def _recon_zero_layerwise(chain, U, V, x, masks, dms):
    target = chain(x)

    def loss(layers, dm):
        def layer_fn(n, a):
            if n in layers:
                return ref.masked_product(a, chain.weights[n], U[n], V[n], masks[n], dm(n))
            return einops.einsum(a, chain.weights[n], EIN)

        return (chain(x, layer_fn) - target).pow(2).mean((0, 2)).sum()

    L = len(chain.weights)
    full = loss(set(range(L)), lambda n: dms[n])
    return full, sum(loss({m}, lambda n: torch.zeros_like(dms[n])) for m in range(L)) / L


def test_recon_zero_delta_in_layerwise_runs_named():
    failure = assert_fails(
        checks.test_stochastic_reconstruction_losses, _recon_zero_layerwise, "delta_masks_overridden"
    )
    assert "layerwise runs" in failure.hint and "zeros" in failure.hint


def test_minimality_eps_outside_log_named():
    impl = lambda cis, p, eps=1e-12: sum(torch.exp(p * torch.log(g) + eps).sum(-1) for g in cis).mean(0).sum()
    assert_fails(checks.test_importance_minimality_loss, impl, "eps_outside_log")


def test_minimality_batch_divided_twice_names_the_batch():
    def impl(cis, p, eps=1e-12):
        per = sum((g + eps).pow(p).sum(-1) for g in cis)
        return per.mean(0).sum() / per.shape[0]

    failure = assert_fails(checks.test_importance_minimality_loss, impl, "batch_twice")
    assert "batch size" in failure.hint


def test_adversarial_pgd_ball_listed_among_causes():
    def impl(loss_fn, init, n_steps, step_size):
        s0 = [s.detach().clone() for s in init]
        s = [t.clone() for t in s0]
        for _ in range(n_steps):
            s = [t.requires_grad_(True) for t in s]
            grads = torch.autograd.grad(loss_fn(s), s)
            with torch.no_grad():
                s = [
                    torch.min(torch.max(t + step_size * d.sign(), o - step_size), o + step_size).clamp(0, 1)
                    for t, d, o in zip(s, grads, s0, strict=True)
                ]
        return [t.detach() for t in s]

    failure = assert_fails(checks.test_adversarial_sources, impl, "small_steps")
    assert "as in PGD" in failure.hint
