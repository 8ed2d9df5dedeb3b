"""Proofs: basis_alignment taken after centring each column, or after normalising over the instances, is named."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import tests.part7_open_problems as checks7
from tests.proving import assert_fails


def _aligned(W):
    n = W.norm(dim=1)
    return torch.where(n > 0, W.abs().amax(1) / n.clamp(min=1e-12), 0.0)


def test_basis_alignment_centred_named():
    assert_fails(checks7.test_basis_alignment, lambda W: _aligned(W - W.mean(1, keepdim=True)), "centred")


def test_basis_alignment_normalised_over_instances_named():
    f = lambda W: torch.where(W.norm(dim=1) > 0, F.normalize(W, dim=0).abs().amax(1), 0.0)
    assert_fails(checks7.test_basis_alignment, f, "norm_axis")
