"""Proofs for part 6b's diagnoses added after the fresh38 held-out measurement: node_influence with the adjacency
clamped while still signed (clamp_min(1e-12) or clamp_min(0) before abs) is named."""

from __future__ import annotations

import pytest
import torch

import tests.part6b_circuits as checks
from tests.proving import assert_fails


@pytest.mark.parametrize("floor", [1e-12, 0.0])
def test_influence_signed_clamp_is_named(floor):
    def node_influence(adjacency, w):
        a = adjacency.clamp_min(floor).abs()
        a = a / a.sum(-1, keepdim=True).clamp_min(1e-12)
        eye = torch.eye(len(a), dtype=a.dtype, device=a.device)
        return w @ (torch.linalg.inv(eye - a) - eye)

    err = assert_fails(checks.test_node_influence, node_influence, "signed_clamped")
    assert "abs" in err.hint
