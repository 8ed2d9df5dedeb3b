"""Proofs for part 3's checkers, second file: mistakes from the held-out trials."""

from __future__ import annotations

import pytest
import torch

import tests.part3_feature_geometry as checks
from tests.proving import assert_fails


def dpf_default_diagonal(W):
    return W.shape[1] / torch.diagonal(W @ W.mT).sum(-1)


def cd_wrong_vector_normalised(W):
    norm_sq = W.pow(2).sum(1)
    unit = W / norm_sq.sqrt().clamp_min(1e-12)[:, None]
    den = torch.einsum("kdi,kdj->kij", W, unit).pow(2).sum(-1)
    return torch.where(den > 0, norm_sq / den.clamp_min(1e-30), 0.0)


def cd_elementwise(W):
    unit = W / W.norm(dim=1, keepdim=True)
    return W.pow(2).sum(1) / (unit * W).pow(2).sum(1)


def cd_pairs_summed_over_both(W):
    norm_sq = W.pow(2).sum(1)
    unit = W / norm_sq.sqrt().clamp_min(1e-12)[:, None]
    return norm_sq / (unit @ W.mT).pow(2).sum((-1, -2))[:, None]


def cd_rotation_dependent(W):  # the overlaps of |W| (coordinates), not of W
    norm_sq = W.pow(2).sum(1)
    A = W.abs()
    unit = A / norm_sq.sqrt().clamp_min(1e-12)[:, None]
    return norm_sq / torch.einsum("kdi,kdj->kij", unit, A).pow(2).sum(-1)


MISTAKES = [
    ("D", dpf_default_diagonal, "diagonal_dims"),
    ("C", cd_wrong_vector_normalised, "sum_axis"),
    ("C", cd_elementwise, "ignores_others"),
    ("C", cd_pairs_summed_over_both, "denominator_constant"),
    ("C", cd_rotation_dependent, "abs_before_dot"),
]
CHECKS = {"D": checks.test_dimensions_per_feature, "C": checks.test_compute_dimensionality}


@pytest.mark.parametrize(("kind", "impl", "code"), MISTAKES, ids=[f.__name__ for _, f, _ in MISTAKES])
def test_heldout_mistakes_are_named(kind, impl, code):
    assert_fails(CHECKS[kind], impl, code)


def dpf_clamped_denominator(W):
    return W.shape[1] / W.pow(2).sum((1, 2)).clamp_min(1)


def test_fresh6_small_norm_floor():
    """A floor on ‖W‖²_F is caught by a W whose norms are all below 1."""
    err = assert_fails(checks.test_dimensions_per_feature, dpf_clamped_denominator, "small_norm")
    assert "clamp_min(1)" in err.hint


# fresh7: the Frobenius norm of the Gram matrix, and a triangle of the overlap matrix (each pair once)
def dpf_gram_frobenius(W):
    return W.shape[1] / torch.linalg.matrix_norm(W.mT @ W)


def _overlaps(W):
    norm_sq = W.pow(2).sum(1)
    unit = W / norm_sq.sqrt().clamp_min(1e-12)[:, None]
    return norm_sq, torch.einsum("kdi,kdj->kij", unit, W).pow(2)


def cd_triu(W):
    norm_sq, ov = _overlaps(W)
    den = ov.triu().sum(-1)
    return torch.where(den > 0, norm_sq / den.clamp_min(1e-30), 0.0)


def cd_tril_strict(W):
    norm_sq, ov = _overlaps(W)
    den = ov.tril(-1).sum(-1)
    return torch.where(den > 0, norm_sq / den.clamp_min(1e-30), 0.0)


def test_fresh7_mistakes_are_named():
    err = assert_fails(checks.test_dimensions_per_feature, dpf_gram_frobenius, "gram_norm")
    assert "Gram" in err.hint
    err = assert_fails(checks.test_compute_dimensionality, cd_triu, "triangle_only")
    assert "j > i" in err.message and "both orders" in err.hint
    err = assert_fails(checks.test_compute_dimensionality, cd_tril_strict, "triangle_only")
    assert "j < i" in err.message


def cd_float32_buffer(W):
    k, _, f = W.shape
    out = torch.zeros(k, f)
    for inst in range(k):
        G = W[inst].T @ W[inst]
        den, num = G.pow(2).sum(-1), G.diagonal() ** 2
        out[inst] = torch.where(den > 0, num / den.clamp_min(1e-300), 0.0)
    return out


def test_float32_buffer_named():
    err = assert_fails(checks.test_compute_dimensionality, cd_float32_buffer, "dtype")
    assert "default dtype" in err.hint
