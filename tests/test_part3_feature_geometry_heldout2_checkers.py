"""Proofs for the fresh10 held-out fixes in part 3: a rank numerator, norms summed then squared and the Gram sum in
D*; L1-normalised dimensionality and the self-term counted twice."""

from __future__ import annotations

import einops
import torch

import tests.part3_feature_geometry as p3
from tests.proving import assert_fails


def d_rank(W):
    return torch.linalg.matrix_rank(W).float() / W.pow(2).sum((1, 2))


def d_sum_norms_sq(W):
    return W.shape[1] / W.norm(dim=1).sum(-1).pow(2)


def d_gram_sum(W):
    return W.shape[1] / (W.mT @ W).sum((1, 2))


def cd3_l1(W):
    norms_sq = W.pow(2).sum(1)
    unit = W / W.abs().sum(1, keepdim=True).clamp_min(1e-12)
    return norms_sq / einops.einsum(unit, W, "k d i, k d j -> k i j").pow(2).sum(-1).clamp_min(1e-30)


def cd3_self_twice(W):
    norms_sq = W.pow(2).sum(1)
    unit = W / norms_sq.sqrt().clamp_min(1e-12).unsqueeze(1)
    den = einops.einsum(unit, W, "k d i, k d j -> k i j").pow(2).sum(-1) + norms_sq
    return torch.where(den > 0, norms_sq / den.clamp_min(1e-30), torch.zeros_like(norms_sq))


def test_part3_dimensions():
    assert_fails(p3.test_dimensions_per_feature, d_rank, "numerator_rank")
    assert_fails(p3.test_dimensions_per_feature, d_sum_norms_sq, "norms_summed_squared")
    assert_fails(p3.test_dimensions_per_feature, d_gram_sum, "gram_sum")
    err = assert_fails(p3.test_compute_dimensionality, cd3_l1, "not_rotation_invariant")
    assert "L1" in err.hint
    assert_fails(p3.test_compute_dimensionality, cd3_self_twice, "self_term_twice")
