"""Proofs for section 3 (round AU): dimensions_per_feature with floor division (d // ‖W‖²_F) or another rounding is
named as a rounded result, not as a wrong numerator; compute_dimensionality with clamp_min applied to W's entries
(where the norm was meant to be clamped) is named as a clamp on the entries, not only as a broken rotation
invariance; and the round's correct variants pass."""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import tests.part3_feature_geometry as checks
from tests.proving import assert_fails, assert_passes


def _ein(a, b):
    return einops.einsum(a, b, "inst d i, inst d j -> inst i j").pow(2).sum(-1)


def test_floor_division_is_named():
    def dimensions_per_feature(W):
        return W.shape[1] // W.pow(2).sum(dim=(1, 2))

    failure = assert_fails(checks.test_dimensions_per_feature, dimensions_per_feature, "rounded_result")
    assert "floor division" in str(failure)


def test_int_cast_is_named():
    def dimensions_per_feature(W):
        return (W.shape[1] / W.pow(2).sum(dim=(1, 2))).int().to(W.dtype)

    assert_fails(checks.test_dimensions_per_feature, dimensions_per_feature, "rounded_result")


def test_clamp_on_entries_is_named():
    def compute_dimensionality(W):
        norms_sq = W.pow(2).sum(1)
        unit = W / W.clamp_min(1e-12).norm(dim=1, keepdim=True)
        return norms_sq / _ein(unit, W).clamp_min(1e-30)

    failure = assert_fails(checks.test_compute_dimensionality, compute_dimensionality, "clamped_entries")
    assert "W.norm(dim=...).clamp_min(1e-12)" in str(failure)


def test_clamp_on_entries_in_numerator_too_is_named():
    def compute_dimensionality(W):
        norms = W.clamp_min(1e-12).norm(dim=1)
        unit = W / norms[:, None, :]
        return norms**2 / _ein(unit, W).clamp_min(1e-30)

    assert_fails(checks.test_compute_dimensionality, compute_dimensionality, "clamped_entries")


def test_vector_norm_passes():
    def dimensions_per_feature(W):
        return W.size(-2) / torch.linalg.vector_norm(W.flatten(1), dim=-1) ** 2

    assert_passes(checks.test_dimensions_per_feature, dimensions_per_feature)


def test_normalize_default_dim_passes():
    def compute_dimensionality(W):
        norms_sq = W.pow(2).sum(1)
        den = torch.bmm(F.normalize(W).mT, W).pow(2).sum(-1)
        return torch.where(
            norms_sq > 0, norms_sq / den.clamp_min(torch.finfo(W.dtype).tiny), torch.zeros_like(norms_sq)
        )

    assert_passes(checks.test_compute_dimensionality, compute_dimensionality)


def test_gram_diag_passes():
    def compute_dimensionality(W):
        G = W.mT @ W
        num = torch.diagonal(G, dim1=-2, dim2=-1) ** 2
        den = (G * G).sum(-1)
        return (num / den).masked_fill(den == 0, 0.0)

    assert_passes(checks.test_compute_dimensionality, compute_dimensionality)
