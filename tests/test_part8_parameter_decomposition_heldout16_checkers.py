"""Proofs for part 8's checkers, eighteenth file: the fresh20 measurement's slips that were only described. A
faithfulness loss expanded by hand with the cross term's factor 2 lost is named (not framed as a divisor of 49.75),
and so are a gradient multiplied by alpha throughout, SVD terms that are all W or W - term_k, importances softmaxed
over C or computed from a batch-averaged h, a mask added to V a, and the minimality penalty's derivative."""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import solutions.part8_parameter_decomposition as sol
import tests.part8_parameter_decomposition as checks
import tests.part8_parameter_decomposition_slips as slips
from tests.proving import assert_fails

SVD_EIN = "inst d_out r, inst r, inst r d_in -> inst r d_out d_in"


def test_a_hand_expanded_square_with_the_cross_term_factor_lost_is_named():
    def faith(weights, U, V):
        n = sum(W[0].numel() for W in weights)
        se = sum(
            W.pow(2).sum((-2, -1)) + (u @ v).pow(2).sum((-2, -1)) - (W * (u @ v)).sum((-2, -1))
            for W, u, v in zip(weights, U, V, strict=True)
        )
        return (se / n).sum()

    failure = assert_fails(checks.test_faithfulness_loss, faith, "expanded_square")
    assert "cross term with factor 1" in failure.hint and "divided by" not in failure.hint


def test_a_gradient_multiplied_by_alpha_throughout_is_named():
    Lower = slips.learner_sigmoid(lambda x, a, g: a * g * torch.where(x < 0, a, (x <= 1).to(x.dtype)))

    failure = assert_fails(checks.test_lower_leaky_hard_sigmoid, Lower, "alpha_scaled")
    assert "alpha (0.03)" in failure.hint


def test_svd_terms_all_W_or_W_minus_the_term_are_named():
    def every_W(W):
        U, S, Vh = torch.linalg.svd(W, full_matrices=False)
        return torch.stack([U @ torch.diag_embed(S) @ Vh for _ in range(S.shape[-1])], dim=1)

    def ablated(W):
        U, S, Vh = torch.linalg.svd(W, full_matrices=False)
        return W[:, None] - einops.einsum(U, S, Vh, SVD_EIN)

    assert_fails(checks.test_svd_terms, every_W, "every_term_W")
    assert_fails(checks.test_svd_terms, ablated, "ablated_not_terms")


def _ci_class(softmax: bool, batch_mean: bool):
    class CI(sol.CausalImportance):
        def forward(self, a, V):
            h = einops.einsum(a, V, "batch inst d_in, inst C d_in -> batch inst C")
            h = h.mean(0, keepdim=True).expand_as(h) if batch_mean else h
            z = (F.gelu(h[..., None] * self.w_in + self.b_in) * self.w_out).sum(-1) + self.b_out
            z = z.softmax(-1) if softmax else z
            return sol.LowerLeakyHardSigmoid.apply(z, self.alpha), sol.UpperLeakyHardSigmoid.apply(z, self.alpha)

    return CI


def test_importances_softmaxed_over_C_or_from_a_batch_mean_h_are_named():
    assert_fails(checks.test_causal_importance, _ci_class(True, False), "softmax_over_C")
    assert_fails(checks.test_causal_importance, _ci_class(False, True), "batch_mean_h")


def test_a_mask_added_to_V_a_is_named():
    def product(a, W, U, V, mask, delta_mask):
        inner = einops.einsum(a, V, "batch inst d_in, inst C d_in -> batch inst C")
        out = einops.einsum(inner + mask, U, "batch inst C, inst d_out C -> batch inst d_out")
        delta = einops.einsum(a, W - U @ V, "batch inst d_in, inst d_out d_in -> batch inst d_out")
        return out + delta_mask[..., None] * delta

    assert_fails(checks.test_masked_product, product, "mask_added")


def test_the_penalty_derivative_written_is_named():
    def penalty(ci, p, eps):
        return sum((p * (g + eps) ** (p - 1)).sum(-1) for g in ci).mean(0).sum()

    assert_fails(checks.test_importance_minimality_loss, penalty, "derivative_written")
