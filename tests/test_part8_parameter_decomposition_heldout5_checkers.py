"""Proofs for part 8's checkers, seventh file: mistakes from the tenth fresh held-out measurement. A tuple or list
where one tensor belongs gets a hint; the slope each leaky sigmoid uses outside [0, 1] is measured (an alpha not
passed leaks with the default 0.01); all-zero importances show exact zeros skipped; 0 steps of the ascent show a start
other than init; the rest are mutants (inner activations scaled, a difference of squares, U V summed over instances,
the first g detached, the delta term scaled by the mean mask, a layerwise accumulator started from the full loss)."""

from __future__ import annotations

import math

import einops
import torch
import torch.nn.functional as F

import solutions.part8_parameter_decomposition as ref
import tests.part8_parameter_decomposition as checks
from tests.proving import assert_fails, assert_passes


def ein(a, W):
    return einops.einsum(a, W, "batch inst d_in, inst d_out d_in -> batch inst d_out")


def svd_signed(flip_v: bool):
    def impl(W):
        U, S, Vh = torch.linalg.svd(W, full_matrices=False)
        sign = torch.gather(U, -2, U.abs().argmax(-2, keepdim=True)).sign()
        U, Vh = U * sign, (Vh * sign.mT if flip_v else Vh)
        return einops.einsum(U, S, Vh, "inst d_out r, inst r, inst r d_in -> inst r d_out d_in")

    return impl


def test_svd_sign_on_u_only_is_named_and_both_passes():
    failure = assert_fails(checks.test_svd_terms, svd_signed(False), "sign_flip")
    assert "v_k too" in failure.hint
    assert_passes(checks.test_svd_terms, svd_signed(True))


def test_svd_factors_returned_get_a_hint():
    failure = assert_fails(checks.test_svd_terms, lambda W: torch.linalg.svd(W, full_matrices=False), "not_tensor")
    assert "factors of the SVD" in failure.hint


def ablation(reduce):
    def impl(chain, terms, x):
        original, out = chain(x), []
        for k in range(terms.shape[1]):
            W = chain.weights[0] - terms[:, k]
            y = chain(x, lambda layer, a, W=W: ein(a, W if layer == 0 else chain.weights[layer]))
            out.append(reduce(y, original))
        return einops.rearrange(torch.stack(out), "k batch inst -> inst k batch")

    return impl


def test_ablation_difference_of_squares_is_named():
    impl = ablation(lambda y, y0: (y.pow(2) - y0.pow(2)).mean(-1))
    assert "difference of the squares" in assert_fails(checks.test_ablation_losses, impl, "difference_of_squares").hint


def test_ablation_half_mse_lists_the_half_convention():
    impl = ablation(lambda y, y0: 0.5 * (y - y0).pow(2).mean(-1))
    assert "½" in assert_fails(checks.test_ablation_losses, impl, "scale").hint


def test_faithfulness_instances_summed_is_named():
    def impl(weights, U, V):
        sq = sum(
            (W - einops.einsum(u, v, "inst d_out C, inst C d_in -> d_out d_in")).pow(2).sum((-2, -1))
            for W, u, v in zip(weights, U, V, strict=True)
        )
        return (sq / sum(W[0].numel() for W in weights)).sum()

    assert "'d_out d_in'" in assert_fails(checks.test_faithfulness_loss, impl, "instances_summed").hint


class UpperTuple(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, alpha=0.01):
        ctx.save_for_backward(x)
        ctx.alpha = alpha
        return x.clamp(0, 1), None

    @staticmethod
    def backward(ctx, grad_output, _unused=None):
        (x,) = ctx.saved_tensors
        return grad_output * torch.where(x > 1, ctx.alpha, (x >= 0).to(x.dtype)), None


def test_sigmoid_forward_tuple_gets_a_hint():
    assert "one tensor" in assert_fails(checks.test_upper_leaky_hard_sigmoid, UpperTuple, "not_tensor").hint


def ci_class(scale: float = 1.0, upper_alpha: bool = True, lower_alpha: bool = True):
    class Impl(ref.CausalImportance):
        def forward(self, a, V):
            inner = einops.einsum(a, V, "batch inst d_in, inst C d_in -> batch inst C") * scale
            z = (F.gelu(inner[..., None] * self.w_in + self.b_in) * self.w_out).sum(-1) + self.b_out
            lo = ref.LowerLeakyHardSigmoid.apply(z, self.alpha) if lower_alpha else ref.LowerLeakyHardSigmoid.apply(z)
            up = ref.UpperLeakyHardSigmoid.apply(z, self.alpha) if upper_alpha else ref.UpperLeakyHardSigmoid.apply(z)
            return lo, up

    return Impl


def test_ci_scaled_inner_activation_is_named():
    failure = assert_fails(checks.test_causal_importance, ci_class(scale=1 / math.sqrt(6)), "inner_scaled")
    assert "1/√d_in" in failure.hint


def test_ci_alpha_not_passed_names_the_side_and_the_slope():
    failure = assert_fails(checks.test_causal_importance, ci_class(upper_alpha=False), "alpha_not_passed")
    assert "upper" in failure.message and "0.01" in failure.message and "UpperLeakyHardSigmoid" in failure.hint
    failure = assert_fails(checks.test_causal_importance, ci_class(lower_alpha=False), "alpha_not_passed")
    assert "lower" in failure.message and "LowerLeakyHardSigmoid" in failure.hint
    assert_passes(checks.test_causal_importance, ci_class())


def test_masks_first_g_detached_is_named():
    def impl(cis):
        return [g.detach() + (1 - g) * torch.rand_like(g) for g in cis], [torch.rand(g.shape[:-1]) for g in cis]

    assert "detached" in assert_fails(checks.test_sample_masks, impl, "g_detached").hint


def test_masked_delta_by_mean_mask_is_named():
    def impl(a, W, U, V, mask, delta_mask):
        inner = einops.einsum(a, V, "batch inst d_in, inst C d_in -> batch inst C")
        out = einops.einsum(inner * mask, U, "batch inst C, inst d_out C -> batch inst d_out")
        return out + mask.mean(-1, keepdim=True) * ein(a, W - U @ V)

    assert "delta_mask" in assert_fails(checks.test_masked_product, impl, "delta_mask_from_masks").hint


def test_recon_accumulator_from_full_is_named():
    def run(chain, U, V, x, masks, dms, layers):
        def layer_fn(layer, a):
            if layer in layers:
                return ref.masked_product(a, chain.weights[layer], U[layer], V[layer], masks[layer], dms[layer])
            return ein(a, chain.weights[layer])

        return chain(x, layer_fn)

    def impl(chain, U, V, x, masks, dms):
        target, n = chain(x), len(chain.weights)
        loss = lambda layers: (run(chain, U, V, x, masks, dms, layers) - target).pow(2).mean((0, 2)).sum()
        full = total = loss(set(range(n)))
        for layer in range(n):
            total = total + loss({layer})
        return full, total / n

    failure = assert_fails(checks.test_stochastic_reconstruction_losses, impl, "layerwise_from_full")
    assert "accumulator" in failure.hint


def test_minimality_zeros_skipped_and_list_are_named():
    def skipped(cis, p, eps):
        return sum(torch.where(g > 0, (g + eps) ** p, torch.zeros_like(g)).sum(-1) for g in cis).mean(0).sum()

    failure = assert_fails(checks.test_importance_minimality_loss, skipped, "zeros_skipped")
    assert "zeros skipped: (0 + eps)^p still counts" in failure.hint
    listed = lambda cis, p, eps: [((g + eps) ** p).sum(-1).mean(0).sum() for g in cis]
    assert "list" in assert_fails(checks.test_importance_minimality_loss, listed, "not_tensor").hint


def test_adversarial_start_from_zeros_is_named():
    def impl(loss_fn, init, n_steps, step_size):
        sources = [torch.zeros_like(s) for s in init]
        for _ in range(n_steps):
            sources = [s.detach().requires_grad_(True) for s in sources]
            grads = torch.autograd.grad(loss_fn(sources), sources)
            sources = [(s + step_size * g.sign()).clamp(0, 1) for s, g in zip(sources, grads, strict=True)]
        return [s.detach() for s in sources]

    assert "init ignored" in assert_fails(checks.test_adversarial_sources, impl, "init_ignored").hint
