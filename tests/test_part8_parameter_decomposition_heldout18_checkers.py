"""Proofs for part 8's checkers, twentieth file: the fresh22 measurement's slips. An ablation loss divided by
d_out - 1 (the batch no longer equals it), an output marked non-differentiable, the GELU hidden layer detached, a
full reconstruction loss read from a single-matrix run, only some adversarial sources clamped, a slope cut at
|x| <= 1, the delta mask reduced over an axis or put on U V a alone, and the penalty of 1 - g or a batch sum
divided by B - 1 are named."""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import solutions.part8_parameter_decomposition as sol
import tests.part8_parameter_decomposition as checks
from tests.part8_parameter_decomposition_slips import learner_sigmoid
from tests.proving import assert_fails

EIN = "batch inst d_in, inst d_out d_in -> batch inst d_out"
Lower, Upper = sol.LowerLeakyHardSigmoid, sol.UpperLeakyHardSigmoid


def _ablation(chain, terms, x, reduce):
    original, out = chain(x), []
    for k in range(terms.shape[1]):
        Wk = chain.weights[0] - terms[:, k]
        fn = lambda layer, a, Wk=Wk: einops.einsum(a, Wk if layer == 0 else chain.weights[layer], EIN)
        out.append(reduce(chain(x, fn) - original))
    return einops.rearrange(torch.stack(out), "k batch inst -> inst k batch")


def test_an_ablation_loss_divided_by_d_out_minus_one_is_named_not_blamed_on_the_batch():
    impl = lambda c, t, x: _ablation(c, t, x, lambda d: d.pow(2).sum(-1) / (d.shape[-1] - 1))
    failure = assert_fails(checks.test_ablation_losses, impl, "wrong_count")
    assert "d_out - 1" in failure.hint and "the batch" not in failure.hint


def _non_differentiable(base):
    class Marked(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, alpha=0.01):
            ctx.save_for_backward(x)
            ctx.alpha = alpha
            y = x.clamp(0, 1)
            ctx.mark_non_differentiable(y)
            return y

        backward = base.backward

    return Marked


def test_an_output_marked_non_differentiable_is_named():
    for check, base in ((checks.test_lower_leaky_hard_sigmoid, Lower), (checks.test_upper_leaky_hard_sigmoid, Upper)):
        failure = assert_fails(check, _non_differentiable(base), "no_grad")
        assert "mark_non_differentiable" in failure.hint


def test_a_slope_cut_at_abs_x_le_1_is_described_as_a_misplaced_break():
    LowerAbs = learner_sigmoid(lambda x, alpha, g: g * torch.where(x < 0, alpha, 1.0) * (x.abs() <= 1))
    failure = assert_fails(checks.test_lower_leaky_hard_sigmoid, LowerAbs, "slope_regions")
    assert "break is at x ≈ -1" in failure.hint and "changes with x" not in failure.hint


def test_the_hidden_layer_detached_before_the_output_layer_is_named():
    def forward(self, a, V):
        inner = einops.einsum(a, V, "batch inst d_in, inst C d_in -> batch inst C")
        hidden = F.gelu(inner[..., None] * self.w_in + self.b_in).detach()
        z = (hidden * self.w_out).sum(-1) + self.b_out
        return Lower.apply(z, self.alpha), Upper.apply(z, self.alpha)

    CI = type("CI", (sol.CausalImportance,), {"forward": forward})
    failure = assert_fails(checks.test_causal_importance, CI, "hidden_detached")
    assert "inner activations V a" not in failure.hint and "hidden activations" in failure.hint


def _recon(full_from):
    def impl(chain, U, V, x, masks, dms):
        target, L = chain(x), len(chain.weights)

        def run(layers):
            def fn(layer, a):
                if layer in layers:
                    return sol.masked_product(a, chain.weights[layer], U[layer], V[layer], masks[layer], dms[layer])
                return einops.einsum(a, chain.weights[layer], EIN)

            return chain(x, fn)

        loss = lambda y: (y - target).pow(2).mean((0, 2)).sum()
        outs = [run({n}) for n in range(L)]
        return loss(outs[full_from(L)]), sum(loss(y) for y in outs) / L

    return impl


def test_a_full_loss_read_from_a_single_matrix_run_is_named():
    failure = assert_fails(checks.test_stochastic_reconstruction_losses, _recon(lambda L: L - 1), "unmasked_inputs")
    assert "`out` reused" in failure.hint  # the last run: both causes listed (they give the same losses)
    failure = assert_fails(checks.test_stochastic_reconstruction_losses, _recon(lambda L: 0), "full_from_one_run")
    assert "only matrix 0 masked" in failure.hint


def test_only_the_first_source_clamped_is_listed():
    def adv(loss_fn, init, n_steps, step_size):
        s = [t.detach().clone() for t in init]
        for _ in range(n_steps):
            s = [t.requires_grad_(True) for t in s]
            grads = torch.autograd.grad(loss_fn(s), s)
            with torch.no_grad():
                s = [t + step_size * g.sign() for t, g in zip(s, grads, strict=True)]
                s[0] = s[0].clamp(0, 1)
        return [t.detach() for t in s]

    failure = assert_fails(checks.test_adversarial_sources, adv, "partial_clamp")
    assert "only source 0 of the 2 is clamped" in failure.hint


def test_a_delta_mask_reduced_over_an_axis_or_on_u_v_a_alone_is_named():
    def batch_mean(a, W, U, V, mask, dm):
        return sol.masked_product(a, W, U, V, mask, dm.mean(0, keepdim=True).expand_as(dm))

    failure = assert_fails(checks.test_masked_product, batch_mean, "delta_mask_reduced")
    assert "batch" in failure.hint

    def on_uv(a, W, U, V, mask, dm):
        inner = einops.einsum(a, V, "batch inst d_in, inst C d_in -> batch inst C")
        out = einops.einsum(inner * mask, U, "batch inst C, inst d_out C -> batch inst d_out")
        uv = einops.einsum(inner, U, "batch inst C, inst d_out C -> batch inst d_out")
        return out + einops.einsum(a, W, EIN) - dm[..., None] * uv

    assert_fails(checks.test_masked_product, on_uv, "delta_mask_on_uv")


def test_a_penalty_of_the_complement_or_a_batch_sum_over_b_minus_one_is_named():
    def complement(cis, p, eps=1e-12):
        return sum((1 - g + eps).pow(p).sum(-1) for g in cis).mean(0).sum()

    assert_fails(checks.test_importance_minimality_loss, complement, "complement")

    def unbiased(cis, p, eps=1e-12):
        return sum((g + eps).pow(p).sum(-1) for g in cis).sum(0).sum() / (cis[0].shape[0] - 1)

    assert_fails(checks.test_importance_minimality_loss, unbiased, "batch_minus_one")
