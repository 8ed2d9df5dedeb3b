"""Proofs for section 3 (held-out round AW): a Frobenius norm replaced by the largest (or smallest) ‖W_i‖² of an
instance's features is read back as that max / min in every instance and named so, instead of the generic 'some
features are left out (a slice, a mask, an index)'. The round's correct variants pass."""

from __future__ import annotations

import einops
import torch

import tests.part3_feature_geometry as checks
from tests.proving import assert_fails, assert_passes


def dpf_sum_sq_over_hidden_then_max(W):
    return W.shape[1] / W.pow(2).sum(dim=1).amax(dim=-1)


def dpf_sum_sq_then_min(W):
    return W.shape[1] / W.pow(2).sum(dim=1).min(dim=-1).values


def dpf_einsum(W):
    return W.size(-2) / torch.einsum("kdf,kdf->k", W, W)


def cd_nan_to_num(W):
    G = torch.bmm(W.transpose(1, 2), W)
    n2 = torch.diagonal(G, dim1=1, dim2=2)
    return torch.nan_to_num(n2.square() / G.square().sum(2), nan=0.0)


def cd_hidden_gram(W):
    H = W @ W.mT
    quad = einops.einsum(W, H, W, "inst d i, inst d e, inst e i -> inst i")
    n2 = W.pow(2).sum(1)
    out = torch.zeros_like(n2)
    mask = quad > 0
    out[mask] = n2[mask] ** 2 / quad[mask]
    return out


def test_max_over_features_is_named():
    failure = assert_fails(checks.test_dimensions_per_feature, dpf_sum_sq_over_hidden_then_max, "largest_feature_only")
    assert "amax / max" in str(failure) and "slice" not in str(failure)


def test_min_over_features_is_named():
    failure = assert_fails(checks.test_dimensions_per_feature, dpf_sum_sq_then_min, "smallest_feature_only")
    assert "amin / min" in str(failure)


def test_round_correct_variants_pass():
    assert_passes(checks.test_dimensions_per_feature, dpf_einsum)
    assert_passes(checks.test_compute_dimensionality, cd_nan_to_num)
    assert_passes(checks.test_compute_dimensionality, cd_hidden_gram)


def dpf_diagonal_default_dims(W):
    return W.shape[1] / (W.mT @ W).diagonal().sum(0)


def test_diagonal_default_dims_is_named():
    failure = assert_fails(checks.test_dimensions_per_feature, dpf_diagonal_default_dims, "diagonal_default_dims")
    assert "dims (0, 1)" in str(failure)


def cd_den_ge_zero(W):
    norm_sq = W.pow(2).sum(1)
    W_hat = W / norm_sq.sqrt().clamp_min(1e-12)[:, None, :]
    den = einops.einsum(W_hat, W, "inst d i, inst d j -> inst i j").pow(2).sum(-1)
    return torch.where(den >= 0, norm_sq / den, torch.zeros_like(norm_sq))


def test_zero_feature_nan_names_both_guards():
    failure = assert_fails(checks.test_compute_dimensionality, cd_den_ge_zero, "zero_feature")
    assert "`den >= 0` is always true" in str(failure) and "den != 0" in str(failure)
