"""Proofs for the fresh14 held-out fixes in part 3: squared overlaps over ‖W_i‖ (a power of the norm off by one,
not only the numerator), overlaps not squared (a signed sum)."""

from __future__ import annotations

import einops
import torch

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


# fresh17: row norms summed then squared, the norm of the squared column norms, distances as overlaps
def dpf_rows(W):
    return W.shape[1] / W.norm(dim=2).sum(-1) ** 2


def dpf_diag_norm(W):
    return W.shape[1] / (W.mT @ W).diagonal(dim1=1, dim2=2).norm(dim=-1)


def cd_cdist(W):
    n2 = W.pow(2).sum(1)
    den = torch.cdist(W.mT, W.mT).pow(2).sum(-1)
    return torch.where(den > 0, n2**2 / den, torch.zeros_like(n2))


def cd_cdist_sqrt(W):  # distances not squared: scales like c, the scale probe names distances among the causes
    n2 = W.pow(2).sum(1)
    return n2 / torch.cdist(W.mT, W.mT).sum(-1)


def test_part3_fresh17():
    err = assert_fails(p3.test_dimensions_per_feature, dpf_rows, "row_norms_summed_squared")
    assert "rows" in err.hint
    err = assert_fails(p3.test_dimensions_per_feature, dpf_diag_norm, "norm_of_squared_norms")
    assert "diag(WᵀW)" in err.hint
    err = assert_fails(p3.test_compute_dimensionality, cd_cdist, "distances_not_overlaps")
    assert "torch.cdist" in err.hint
    err = assert_fails(p3.test_compute_dimensionality, cd_cdist_sqrt, "not_scale_free")
    assert "torch.cdist" in err.hint
