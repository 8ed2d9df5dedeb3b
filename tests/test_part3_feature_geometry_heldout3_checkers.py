"""Proofs for the fresh14 held-out fixes in part 3: squared overlaps over ‖W_i‖ (a power of the norm off by one,
not only the numerator), overlaps not squared (a signed sum), overlaps squared with matrix products (O * O.mT,
O @ O, G @ G; shared with part 4)."""

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


def _overlaps(W):
    return einops.einsum(_unit(W), W, "k d i, k d j -> k i j")


def cd_times_transpose(W):  # O * O.mT for the square of O (O is not symmetric)
    ov = _overlaps(W)
    return W.pow(2).sum(1) / (ov * ov.mT).sum(-1)


def cd_matrix_power(W):  # torch.linalg.matrix_power(O, 2) for O ** 2, guarded against a zero denominator
    den = torch.linalg.matrix_power(_overlaps(W), 2).sum(-1)
    return torch.where(den > 0, W.pow(2).sum(1) / den, torch.zeros_like(den))


def cd_gram_matmul(W):  # the Gram form ‖W_i‖⁴ / Σ_j (W_i·W_j)² with G @ G for G ** 2
    G = W.mT @ W
    return W.pow(2).sum(1) ** 2 / (G @ G).sum(-1).clamp_min(1e-12)


def cd_gram_times_transpose(W):  # correct: G is symmetric, so G * G.mT is G ** 2
    G = W.mT @ W
    den = (G * G.mT).sum(-1)
    return torch.where(den > 0, W.pow(2).sum(1) ** 2 / den, torch.zeros_like(den))


def test_part3_overlaps_squared_as_matrix_products():
    err = assert_fails(p3.test_compute_dimensionality, cd_times_transpose, "overlap_times_transpose")
    assert "O * O.mT" in err.hint and "Ŵ_i·W_j" in err.hint
    err = assert_fails(p3.test_compute_dimensionality, cd_matrix_power, "overlap_matrix_power")
    assert "O @ O" in err.hint
    err = assert_fails(p3.test_compute_dimensionality, cd_gram_matmul, "overlap_matrix_power")
    assert "G @ G" in err.hint and "‖W_i‖⁴" in err.hint
    p3.test_compute_dimensionality(cd_gram_times_transpose)
