"""Proofs for part 3 after the fresh31 measurement: the overlaps summed before squaring, ‖W_i‖⁴ / (Σ_j |W_i·W_j|)²
(`square_after_sum`, in the shared `tests/part3_feature_geometry_overlaps.py`); the signed (Σ_j W_i·W_j)² keeps its own
reading (`square_of_sum`)."""

from __future__ import annotations

import einops
import pytest
import torch

import tests.part3_feature_geometry as p3
from tests.proving import assert_fails


@pytest.mark.parametrize("absolute, code", [(True, "square_after_sum"), (False, "square_of_sum")])
def test_square_after_sum(absolute, code):
    def compute_dimensionality(W):
        n = W.pow(2).sum(1)
        o = einops.einsum(W, W, "k d i, k d j -> k i j")
        o = (o.abs() if absolute else o).sum(-1)
        return torch.where(o != 0, n**2 / o.pow(2), torch.zeros_like(n))

    failure = assert_fails(p3.test_compute_dimensionality, compute_dimensionality, code)
    assert "summed first" in failure.hint if absolute else "before* summing" in failure.hint
