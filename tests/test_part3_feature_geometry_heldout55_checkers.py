"""Proofs for section 3 (held-out round BB): compute_dimensionality reads back two slips at once
(tests/part3_feature_geometry_slip_pairs.py composes every pair of wrong choices in the formula: normalisation axis,
which side is normalised, |·| or a signed overlap for its square, sum over i, self term left out or added as ‖W_i‖²,
mean for sum, numerator power) and names both. The round's correct variants pass."""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import tests.part3_feature_geometry as checks
from tests.proving import assert_fails, assert_passes

dpf, cd = checks.test_dimensions_per_feature, checks.test_compute_dimensionality


def _overlaps(W, axis=1):
    unit = W / W.norm(dim=axis, keepdim=True).clamp_min(1e-12)
    return W.pow(2).sum(1), einops.einsum(unit, W, "i d a, i d b -> i a b")


def _guarded(n, den):
    return torch.where(den > 0, n / den, torch.zeros_like(n))


def cd_abs_sum_over_i(W):
    n, dots = _overlaps(W)
    return _guarded(n, dots.abs().sum(-2))


def cd_no_self_mean(W):
    n, dots = _overlaps(W)
    eye = torch.eye(W.shape[2], dtype=torch.bool, device=W.device)
    return _guarded(n, dots.pow(2).masked_fill(eye, 0).mean(-1))


def cd_feature_axis_abs(W):
    n, dots = _overlaps(W, axis=2)
    return _guarded(n, dots.abs().sum(-1))


def test_two_slips_named():
    for impl in (cd_abs_sum_over_i, cd_no_self_mean, cd_feature_axis_abs):
        err = assert_fails(cd, impl, "two_slips")
        assert "(1)" in err.message and "(2)" in err.message


def test_correct_variants_pass():
    def cos_times_norm(W):
        n = W.pow(2).sum(1)
        unit = F.normalize(W, dim=1)
        den = ((unit.mT @ unit).pow(2) * n[:, None, :]).sum(-1)
        return torch.where(den > 0, n / den.clamp_min(1e-30), torch.zeros_like(n))

    def diag_gram_squared(W):
        G = W.mT @ W
        n = torch.diagonal(G, dim1=1, dim2=2)
        den = torch.diagonal(G @ G, dim1=1, dim2=2)
        return torch.where(den > 0, n**2 / den, torch.zeros_like(n))

    for impl in (cos_times_norm, diag_gram_squared):
        assert_passes(cd, impl)
