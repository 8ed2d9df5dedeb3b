"""Proofs for part 8's checkers, fourth file: mistakes from the fifth fresh held-out measurement, each named by a
generic diagnosis (a factor on one loss, one matrix's term, a law of the draws, an elementwise broadcast)."""

from __future__ import annotations

import torch

import solutions.part8_parameter_decomposition as ref
import tests.part8_parameter_decomposition as checks
from tests.proving import assert_fails


def test_recon_full_divided_by_matrices_is_named():
    def impl(chain, U, V, x, masks, dms):
        full, layerwise = ref.stochastic_reconstruction_losses(chain, U, V, x, masks, dms)
        return full / len(chain.weights), layerwise

    assert_fails(checks.test_stochastic_reconstruction_losses, impl, "scale")


def test_minimality_last_matrix_only_is_named():
    def impl(ci, p, eps=1e-12):
        for g in ci:
            per_example = (g + eps).pow(p).sum(-1)
        return per_example.mean(0).sum()

    assert_fails(checks.test_importance_minimality_loss, impl, "one_matrix")


def test_masks_sigmoid_of_normal_lists_causes():
    def impl(ci):
        masks = [g + (1 - g) * torch.sigmoid(torch.randn_like(g)) for g in ci]
        return masks, [torch.rand_like(g[..., 0]) for g in ci]

    err = assert_fails(checks.test_sample_masks, impl, "not_uniform")
    assert "Possible causes" in str(err) and "independent uniform draws" not in str(err)


def test_masks_mean_of_two_draws_is_named():
    def impl(ci):
        masks = [g + (1 - g) * torch.rand(*g.shape, 2).mean(-1) for g in ci]
        return masks, [torch.rand_like(g[..., 0]) for g in ci]

    err = assert_fails(checks.test_sample_masks, impl, "not_uniform")
    assert "a mean of 2 independent uniform draws" in str(err)


def test_upper_sigmoid_zeroed_negative_gradients_is_named():
    class Upper(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, alpha=0.01):
            ctx.save_for_backward(x)
            ctx.alpha = alpha
            return x.clamp(0, 1)

        @staticmethod
        def backward(ctx, grad_output):
            (x,) = ctx.saved_tensors
            return (grad_output * torch.where(x > 1, ctx.alpha, 1.0)).relu(), None

    err = assert_fails(checks.test_upper_leaky_hard_sigmoid, Upper, "slope_regions")
    assert "negative incoming gradients were zeroed" in str(err)


def test_masked_product_elementwise_clash_is_not_called_a_matmul():
    def impl(a, W, U, V, mask, delta_mask):
        inner = torch.einsum("bid,icd->bic", a, V)
        out = torch.einsum("bic,ioc->bio", inner * mask, U)
        return out + delta_mask[..., None, None] * torch.einsum("bid,iod->bio", a, W - U @ V)

    err = assert_fails(checks.test_masked_product, impl, "broadcast")
    assert "elementwise" in str(err) and "batched matmul" not in str(err)
