"""Proofs: the ablation change summed over every layer's activation, and a faithfulness loss that compares
directions (W / ‖W‖ against U V / ‖U V‖) or takes the max over the matrices, are each named."""

from __future__ import annotations

import einops
import torch

import tests.part8_parameter_decomposition as checks
from tests.proving import assert_fails


def _layer(a, W):
    return einops.einsum(a, W, "... inst d_in, inst d_out d_in -> ... inst d_out")


def test_ablation_every_layer():
    def impl(chain, terms, x):
        y0, ins0 = chain.run(x)
        clean = [*ins0[1:], y0]
        res = []
        for k in range(terms.shape[1]):
            Wk = chain.weights[0] - terms[:, k]
            y, ins = chain.run(x, lambda n, a, Wk=Wk: _layer(a, Wk if n == 0 else chain.weights[n]))
            res.append(sum((a - c).pow(2).mean(-1) for a, c in zip([*ins[1:], y], clean, strict=True)))
        return einops.rearrange(torch.stack(res), "k batch inst -> inst k batch")

    assert_fails(checks.test_ablation_losses, impl, "every_layer")


def test_faithfulness_directions():
    def impl(weights, U, V):
        n = lambda M: M / torch.linalg.matrix_norm(M)[..., None, None]
        se = sum((n(W) - n(u @ v)).pow(2).sum((-2, -1)) for W, u, v in zip(weights, U, V, strict=True))
        return (se / sum(W[0].numel() for W in weights)).sum()

    assert_fails(checks.test_faithfulness_loss, impl, "directions")


def test_faithfulness_max_over_matrices():
    def impl(weights, U, V):
        se = torch.stack([(W - u @ v).pow(2).sum((-2, -1)) for W, u, v in zip(weights, U, V, strict=True)])
        return (se.max(0).values / sum(W[0].numel() for W in weights)).sum()

    assert_fails(checks.test_faithfulness_loss, impl, "matrix_max")
