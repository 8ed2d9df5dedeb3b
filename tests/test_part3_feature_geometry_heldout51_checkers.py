"""Proofs for section 3 (held-out round AX): dimensions_per_feature is also checked on a float64 W (the output keeps
float64, so a reduction given dtype=torch.float32 fails as `dtype`) and on a W with ‖W‖²_F ≈ 1e-7, where a floor
such as clamp_min(1e-3) is read back as that floor and an added finfo(dtype).eps as that constant. Squaring the
coordinates inside the dot product (Σ_d Ŵ_di²·W_dj²) is read back and named. The round's correct variants pass."""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import tests.part3_feature_geometry as checks
from tests.proving import assert_fails, assert_passes


def dpf_sum_dtype_f32(W):
    return W.shape[1] / W.pow(2).sum((1, 2), dtype=torch.float32)


def dpf_floor_1e3(W):
    return W.shape[1] / W.pow(2).sum((1, 2)).clamp_min(1e-3)


def dpf_add_finfo_eps(W):
    return W.shape[1] / (W.pow(2).sum((1, 2)) + torch.finfo(W.dtype).eps)


def _hat(W):
    return W / W.norm(dim=1, keepdim=True).clamp_min(1e-12)


def cd_square_inside_sum(W):
    n2 = W.pow(2).sum(1)
    ov = einops.einsum(_hat(W) ** 2, W**2, "inst d i, inst d j -> inst i j")
    den = ov.sum(-1)
    return torch.where(den > 0, n2 / den, torch.zeros_like(n2))


def dpf_tensordot_diag(W):
    return torch.stack([W.shape[1] / torch.tensordot(Wk, Wk, dims=2) for Wk in W])


def cd_masked_fill(W):
    n2 = W.pow(2).sum(1)
    den = (F.normalize(W, dim=1).mT @ W).square().sum(-1)
    return (n2 / den).masked_fill(n2 == 0, 0.0)


def cd_hidden_quadratic(W):
    n2 = (W * W).sum(1)
    G = W @ W.mT
    Wh = W / n2.sqrt().clamp_min(1e-12).unsqueeze(1)
    den = (Wh * (G @ Wh)).sum(1)
    out = torch.zeros_like(n2)
    m = n2 > 0
    out[m] = n2[m] / den[m]
    return out


def test_float32_sum_of_float64_is_dtype():
    failure = assert_fails(checks.test_dimensions_per_feature, dpf_sum_dtype_f32, "dtype")
    assert "dtype=" in failure.hint


def test_floor_on_small_norm_is_read_back():
    failure = assert_fails(checks.test_dimensions_per_feature, dpf_floor_1e3, "small_norm")
    assert "clamp_min(0.001)" in failure.hint


def test_added_eps_is_read_back():
    failure = assert_fails(checks.test_dimensions_per_feature, dpf_add_finfo_eps, "small_norm")
    assert "1.192e-07" in str(failure)


def test_square_inside_dot_is_named():
    failure = assert_fails(checks.test_compute_dimensionality, cd_square_inside_sum, "squared_inside_dot")
    assert "square the overlap" in failure.hint


def test_round_correct_variants_pass():
    assert_passes(checks.test_dimensions_per_feature, dpf_tensordot_diag)
    assert_passes(checks.test_compute_dimensionality, cd_masked_fill)
    assert_passes(checks.test_compute_dimensionality, cd_hidden_quadratic)
