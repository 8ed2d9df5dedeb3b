"""Proofs for part 3 after the fresh33 measurement: a small nonzero feature zeroed by a threshold (`small_feature`),
D_i rescaled per instance (`per_instance_rescaled`), |Ŵ_i|·|W_j| (`abs_before_dot`), ‖W_i‖² capped at 1 in D*
(`norms_capped`); after fresh34: the self-term taken as 1 (`self_term_one`)."""

from __future__ import annotations

import einops
import torch

import tests.part3_feature_geometry as p3
from tests.proving import assert_fails


def _parts(W):
    n2 = W.pow(2).sum(1)
    return n2, W / n2.sqrt().clamp_min(1e-12)[:, None, :]


def test_small_feature_zeroed():
    def compute_dimensionality(W):
        n2, U = _parts(W)
        den = (einops.einsum(U, W, "k d i, k d j -> k i j") ** 2).sum(-1)
        return torch.where(den > 1e-6, n2 / den.clamp_min(1e-30), torch.zeros_like(n2))

    assert "norm 1e-4" in assert_fails(p3.test_compute_dimensionality, compute_dimensionality, "small_feature").message


def test_rescaled_to_d_hidden():
    def compute_dimensionality(W):
        n2, U = _parts(W)
        den = (einops.einsum(U, W, "k d i, k d j -> k i j") ** 2).sum(-1)
        D = torch.where(den > 0, n2 / den.clamp_min(1e-30), torch.zeros_like(n2))
        return D * W.shape[1] / D.sum(-1, keepdim=True)

    failure = assert_fails(p3.test_compute_dimensionality, compute_dimensionality, "per_instance_rescaled")
    assert "Σ_i D_i = d_hidden" in failure.hint


def test_abs_before_dot():
    def compute_dimensionality(W):
        n2, U = _parts(W)
        den = (einops.einsum(U.abs(), W.abs(), "k d i, k d j -> k i j") ** 2).sum(-1)
        return torch.where(den > 0, n2 / den.clamp_min(1e-30), torch.zeros_like(n2))

    assert_fails(p3.test_compute_dimensionality, compute_dimensionality, "abs_before_dot")


def test_norms_capped():
    assert_fails(
        p3.test_dimensions_per_feature, lambda W: W.shape[1] / W.pow(2).sum(1).clamp(max=1).sum(-1), "norms_capped"
    )


def test_self_term_taken_as_one_is_named():
    def compute_dimensionality(W):  # the j = i term replaced by 1, as if every feature had unit norm
        n2, U = _parts(W)
        den = (einops.einsum(U, W, "k d i, k d j -> k i j") ** 2).sum(-1)
        return n2 / (den - n2 + 1)

    assert "unit norm" in assert_fails(p3.test_compute_dimensionality, compute_dimensionality, "self_term_one").hint
