"""Proofs for the fresh14 held-out fixes in part 3: squared overlaps over ‖W_i‖ (a power of the norm off by one,
not only the numerator), overlaps not squared (a signed sum)."""

from __future__ import annotations

import einops

import tests.part3_feature_geometry as p3
from tests.proving import assert_fails


def _unit(W):
    return W / W.norm(dim=1, keepdim=True).clamp_min(1e-12)


def cd_over_norm(W):
    norms = W.norm(dim=1)
    overlaps = einops.einsum(W, W, "k d i, k d j -> k i j").pow(2).sum(-1)
    return norms.pow(2) / (overlaps / norms.clamp_min(1e-12))


def cd_signed(W):
    den = einops.einsum(_unit(W), W, "k d i, k d j -> k i j").sum(-1)
    return W.pow(2).sum(1) / den


def test_part3_heldout14():
    err = assert_fails(p3.test_compute_dimensionality, cd_over_norm, "numerator_square")
    assert "off by one somewhere" in err.hint
    err = assert_fails(p3.test_compute_dimensionality, cd_signed, "not_squared")
    assert "signed" in err.hint


def dpf_l1_squared(W):  # fresh16: the L1 norm where the Frobenius norm belongs
    return W.shape[1] / W.abs().sum((1, 2)) ** 2


def test_part3_heldout16():
    err = assert_fails(p3.test_dimensions_per_feature, dpf_l1_squared, "l1_norm_squared")
    assert "(Σ |W|)²" in err.hint
