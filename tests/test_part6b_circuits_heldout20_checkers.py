"""Proofs for part 6b's diagnoses added after the fresh38 held-out measurement: node_influence with the adjacency
clamped while still signed (clamp_min(1e-12) before abs) is named; clamp_min(0) keeps the excitatory edges only and
keeps its own name (signed_normaliser)."""

from __future__ import annotations

import pytest
import torch

import tests.part6b_circuits as checks
from tests.proving import assert_fails


@pytest.mark.parametrize("floor, code", [(1e-12, "signed_clamped"), (0.0, "signed_normaliser")])
def test_influence_signed_clamp_is_named(floor, code):
    def node_influence(adjacency, w):
        a = adjacency.clamp_min(floor).abs()
        a = a / a.sum(-1, keepdim=True).clamp_min(1e-12)
        eye = torch.eye(len(a), dtype=a.dtype, device=a.device)
        return w @ (torch.linalg.inv(eye - a) - eye)

    err = assert_fails(checks.test_node_influence, node_influence, code)
    assert "|A|" in err.hint + err.message
