"""Proofs: the basis_alignment axis/centring slips, the dropout-rescaled matryoshka prefixes and a faithfulness sum
over instances taken twice are named."""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import solutions.part8_parameter_decomposition as sol8
import tests.part5b_absorption as checks5b
import tests.part7_open_problems as checks7
import tests.part8_parameter_decomposition as checks8
from tests.proving import assert_fails


def _aligned(W):
    n = W.norm(dim=1)
    return torch.where(n > 0, W.abs().amax(1) / n.clamp(min=1e-12), 0.0)


def test_basis_alignment_centred_named():
    assert_fails(checks7.test_basis_alignment, lambda W: _aligned(W - W.mean(1, keepdim=True)), "centred")


def test_basis_alignment_normalised_over_instances_named():
    f = lambda W: torch.where(W.norm(dim=1) > 0, F.normalize(W, dim=0).abs().amax(1), 0.0)
    assert_fails(checks7.test_basis_alignment, f, "norm_axis")


def test_matryoshka_rescaled_prefixes_named():
    def f(acts, W, b_dec, h, prefix_sizes):
        d_sae, total = acts.shape[-1], 0
        for m in prefix_sizes:
            rec = einops.einsum(acts[..., :m] * (d_sae / m), W[:, :m], "b i m, i m d -> b i d") + b_dec
            total = total + (rec - h).pow(2).mean(-1)
        return total

    assert_fails(checks5b.test_matryoshka_loss, f, "prefix_rescaled")


def test_faithfulness_sum_over_instances_twice_named():
    f = lambda weights, U, V: sol8.faithfulness_loss(weights, U, V) * weights[0].shape[0]
    assert "taken twice" in assert_fails(checks8.test_faithfulness_loss, f, "scale").hint
