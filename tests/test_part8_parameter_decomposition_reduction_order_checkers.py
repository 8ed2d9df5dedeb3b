"""Proofs for part 8's checkers: a layerwise loss weighted by each matrix's C_l (seen only when the matrices' C
differ, which a second run with C_l = 6, 11, 13, 15 makes so), the importances summed or averaged over the instances
or the batch before the power in importance_minimality_loss, and the difference of the norms squared in
faithfulness_loss."""

from __future__ import annotations

import einops
import pytest
import torch

import solutions.part8_parameter_decomposition as sol
import tests.part8_parameter_decomposition as checks
from tests.proving import assert_fails


def _recon(weighting):
    def losses(chain, U, V, x, masks, delta_masks):
        target, L = chain(x), len(chain.weights)

        def loss(layers):
            def layer_fn(layer, a):
                if layer in layers:
                    return sol.masked_product(
                        a, chain.weights[layer], U[layer], V[layer], masks[layer], delta_masks[layer]
                    )
                return einops.einsum(a, chain.weights[layer], "b i d, i o d -> b i o")

            return (chain(x, layer_fn) - target).pow(2).mean((0, 2)).sum()

        w = weighting(U, chain)
        return loss(set(range(L))), sum(wl * loss({n}) for n, wl in enumerate(w))

    return losses


def test_a_layerwise_loss_weighted_by_c_is_named():
    by_c = _recon(lambda U, chain: [u.shape[-1] / sum(v.shape[-1] for v in U) for u in U])
    failure = assert_fails(checks.test_stochastic_reconstruction_losses, by_c, "layerwise_weighted")
    assert "weighted by C_l / ΣC" in failure.hint and "plain mean" in failure.hint


def test_a_layerwise_loss_weighted_by_d_out_is_named():
    by_d = _recon(lambda U, chain: [W.shape[1] / sum(V.shape[1] for V in chain.weights) for W in chain.weights])
    failure = assert_fails(checks.test_stochastic_reconstruction_losses, by_d, "layerwise_weighted")
    assert "weighted by d_out_l / Σd_out" in failure.hint


def test_the_plain_mean_passes_with_uneven_c():
    checks.test_stochastic_reconstruction_losses(sol.stochastic_reconstruction_losses, device="cpu")


@pytest.mark.parametrize(
    "axis, op, words",
    [(1, "sum", "sums the importances over the instances"), (0, "mean", "averages the importances over the batch")],
)
def test_a_reduction_inside_the_power_is_named(axis, op, words):
    def penalty(ci, p, eps):
        return sum((getattr(g, op)(axis, keepdim=True) + eps).pow(p).sum(-1) for g in ci).mean(0).sum()

    failure = assert_fails(checks.test_importance_minimality_loss, penalty, "reduced_before_power")
    assert words in failure.hint


def test_the_difference_of_the_norms_is_named():
    def faith(weights, U, V):
        se = sum(
            (torch.linalg.matrix_norm(W) - torch.linalg.matrix_norm(u @ v)).pow(2)
            for W, u, v in zip(weights, U, V, strict=True)
        )
        return (se / sum(W[0].numel() for W in weights)).sum()

    failure = assert_fails(checks.test_faithfulness_loss, faith, "norm_difference")
    assert "the difference of the norms" in failure.hint and "norm of the difference" in failure.hint
