"""Proofs for part 3's fresh21 and fresh23 fixes: a reshape where a transpose belongs (W.reshape(inst, feats,
d_hidden) used as [inst feats d_hidden]) is named as such, the norm broadcast along the wrong axis is listed among the
sum_axis causes, d_hidden read as min(W.shape[1:]) is caught on a wide W (d_hidden 6 > n_features 4) and named, and
(fresh23) entries a loop never wrote are described as such, not as a threshold in the zero guard."""

from __future__ import annotations

import pytest
import torch

import tests.part3_feature_geometry as p3
from tests.proving import assert_fails


def cd_reshape(W):
    k, d, f = W.shape
    V = W.reshape(k, f, d)
    G = V @ V.mT
    sq = G.diagonal(dim1=-2, dim2=-1)
    return torch.where(sq > 0, sq**2 / G.pow(2).sum(-1).clamp_min(1e-30), 0.0)


def cd_norm_wrong_axis(W):
    norms = W.norm(dim=1)
    W_hat = W / norms[:, None, :].clamp_min(1e-12)
    cos = W_hat.mT @ W_hat
    return norms**2 / (cos**2 * (norms**2)[:, :, None]).sum(-1)


def dpf_min_axis(W):
    return min(W.shape[1:]) / W.pow(2).sum((1, 2))


def test_reshape_for_transpose_is_named():
    err = assert_fails(p3.test_compute_dimensionality, cd_reshape, "reshape_not_transpose")
    assert "reshape" in err.hint and "transpose" in err.hint


def test_norm_broadcast_along_wrong_axis_is_listed():
    err = assert_fails(p3.test_compute_dimensionality, cd_norm_wrong_axis, "sum_axis")
    assert "broadcast along the wrong axis" in err.hint


def test_min_of_axes_for_d_hidden_is_named():
    err = assert_fails(p3.test_dimensions_per_feature, dpf_min_axis, "numerator")
    assert "min(W.shape[1:])" in err.hint


# fresh23: entries a loop never wrote (a whole instance, feature 0 of every instance) are not a threshold in the zero
# guard: zeroed_small speaks only when the zeroed features are the shortest ones; otherwise the region description
def _one(Wk):
    n2 = Wk.pow(2).sum(0)
    den = (Wk.T @ Wk).pow(2).sum(-1)
    return torch.where(den > 0, n2**2 / den.clamp_min(1e-30), torch.zeros_like(n2))


def cd_last_instance_skipped(W):
    out = torch.zeros(W.shape[0], W.shape[2])
    for k in range(W.shape[0] - 1):
        out[k] = _one(W[k])
    return out


def cd_feature_zero_skipped(W):
    out = torch.zeros(W.shape[0], W.shape[2])
    for k in range(W.shape[0]):
        out[k, 1:] = _one(W[k])[1:]
    return out


@pytest.mark.parametrize("impl", [cd_last_instance_skipped, cd_feature_zero_skipped])
def test_compute_dimensionality_never_written(impl):
    failure = assert_fails(p3.test_compute_dimensionality, impl, "one_slice")
    assert "never written" in failure.hint and "zero-vector guard" not in failure.hint
