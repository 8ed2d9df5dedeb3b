"""Proofs for part 3 after held-out round AT: a sum of squares taken as N · var (the mean subtracted before
squaring) is named as a centred sum of squares (`centred_squares`), and the round's correct variants pass."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import tests.part3_feature_geometry as checks
from tests.proving import assert_fails, assert_passes


def test_var_as_sum_of_squares():
    def dpf(W):
        return W.shape[1] / (W.var(dim=(1, 2), unbiased=False) * W[0].numel())

    failure = assert_fails(checks.test_dimensions_per_feature, dpf, "centred_squares")
    assert "mean" in failure.hint and "W.pow(2).sum((1, 2))" in failure.hint


def test_unbiased_column_variance():
    def dpf(W):
        return W.shape[1] / (W.var(dim=1) * W.shape[1]).sum(-1)

    assert_fails(checks.test_dimensions_per_feature, dpf, "centred_squares")


def test_trace_passes():
    def dpf(W):
        return W.shape[-2] / torch.diagonal(W @ W.transpose(1, 2), dim1=1, dim2=2).sum(-1)

    assert_passes(checks.test_dimensions_per_feature, dpf)


def test_normalize_nan_to_num_passes():
    def cd(W):
        norms_sq = W.pow(2).sum(1)
        unit = F.normalize(W, dim=1)
        den = (unit.transpose(1, 2) @ W).pow(2).sum(-1)
        return torch.nan_to_num(norms_sq / den, nan=0.0)

    assert_passes(checks.test_compute_dimensionality, cd)


def test_diag_scaled_passes():
    def cd(W):
        Ws = W / W.abs().amax(dim=(1, 2), keepdim=True).clamp_min(1e-30)  # D is scale invariant per instance
        G = torch.bmm(Ws.mT, Ws)
        num = torch.diagonal(G, dim1=-2, dim2=-1) ** 2
        den = (G * G).sum(-2)
        return torch.where(num > 0, num / den.clamp_min(torch.finfo(W.dtype).tiny), torch.zeros_like(num))

    assert_passes(checks.test_compute_dimensionality, cd)
