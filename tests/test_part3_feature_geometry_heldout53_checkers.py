"""Proofs for section 3 (held-out round AZ). dimensions_per_feature names denominators that are another matrix norm
(matrix_norm's ord=1 / ord=inf operator norms, the nuclear or spectral norm left unsquared), a running total over the
instances (cumsum), and d_hidden divided by every squared entry before summing (infinite at a zero entry, named
before the finiteness check). compute_dimensionality names a denominator with only the largest other overlap, W
centred before D, ‖W_i‖² taken as a mean over d_hidden (D / d_hidden²), and a keepdim norm broadcast to [inst, inst,
feats]. The round's correct variants pass."""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import tests.part3_feature_geometry as checks
from tests.proving import assert_fails, assert_passes

dpf, cd = checks.test_dimensions_per_feature, checks.test_compute_dimensionality


def test_other_matrix_norms_are_named():
    err = assert_fails(dpf, lambda W: W.shape[1] / torch.linalg.matrix_norm(W, ord=1) ** 2, "matrix_norm_ord")
    assert "ord=1" in err.hint and "column sum" in err.hint
    inf_norm = lambda W: W.shape[1] / torch.linalg.matrix_norm(W, ord=float("inf")) ** 2
    err = assert_fails(dpf, inf_norm, "matrix_norm_ord")
    assert "ord=inf" in err.hint and "row sum" in err.hint
    assert_fails(dpf, lambda W: W.shape[1] / torch.linalg.svdvals(W).sum(-1), "nuclear_not_squared")
    assert_fails(dpf, lambda W: W.shape[1] / torch.linalg.matrix_norm(W, ord=2), "spectral_not_squared")


def test_running_total_over_instances_is_named():
    assert_fails(dpf, lambda W: W.shape[1] / W.pow(2).sum((1, 2)).cumsum(0), "cumsum_instances")


def test_entrywise_ratio_is_named_before_the_inf_check():
    err = assert_fails(dpf, lambda W: (W.shape[1] / W.pow(2)).sum((1, 2)), "entrywise_ratio")
    assert "Σ d_hidden / W²" in err.hint


def _dimensionality(W, squared_norms=lambda W: W.pow(2).sum(1)):
    norms_sq = squared_norms(W)
    unit = W / norms_sq.sqrt().clamp_min(1e-12)[:, None]
    den = einops.einsum(unit, W, "k d i, k d j -> k i j").pow(2).sum(-1)
    return torch.where(den > 0, norms_sq / den.clamp_min(1e-30), 0.0)


def test_centred_columns_are_named():
    err = assert_fails(cd, lambda W: _dimensionality(W - W.mean(2, keepdim=True)), "centred_columns")
    assert "W.mean(2, keepdim=True)" in err.hint


def cd_mean_for_norm(W):
    return _dimensionality(W, lambda W: W.pow(2).mean(1))  # a mean over d_hidden where the sum belongs


def test_mean_over_hidden_is_named():
    err = assert_fails(cd, cd_mean_for_norm, "mean_over_hidden")
    assert "d_hidden²" in err.hint


def cd_keepdim(W):
    norms_sq = W.pow(2).sum(1, keepdim=True)
    den = einops.einsum(W, W, "k d i, k d j -> k i j").pow(2).sum(-1)
    return torch.where(den > 0, norms_sq**2 / den, 0.0)


def test_keepdim_broadcast_is_named():
    err = assert_fails(cd, cd_keepdim, "keepdim_broadcast")
    assert "keepdim=True" in err.hint


# --- the round's correct variants -------------------------------------------------------------------------------


def cd_cos_form(W):
    n = W.norm(dim=1)
    unit = W / n.clamp_min(1e-12)[:, None]
    den = ((unit.mT @ unit).pow(2) * n[:, None, :] ** 2).sum(-1)
    return torch.where(n > 0, n**2 / den.clamp_min(1e-30), torch.zeros_like(n))


def cd_gram_rows(W):
    G = W.mT @ W
    ns = torch.diagonal(G, dim1=-2, dim2=-1)
    den = (G / ns.clamp_min(1e-30).sqrt()[..., :, None]).pow(2).sum(-1)
    return torch.where(ns > 0, ns / den.clamp_min(1e-30), 0.0)


def cd_normalize(W):
    den = (F.normalize(W, dim=1).mT @ W).pow(2).sum(-1)
    return torch.nan_to_num(W.pow(2).sum(1) / den, nan=0.0)


def test_round_az_correct_variants_pass():
    assert_passes(dpf, lambda W: W.shape[1] / (torch.linalg.svdvals(W) ** 2).sum(-1))
    assert_passes(dpf, lambda W: W.shape[1] / torch.linalg.eigvalsh(W @ W.mT).sum(-1))
    assert_passes(dpf, lambda W: W.shape[-2] / torch.linalg.vector_norm(W, dim=(-2, -1)).square())
    assert_passes(dpf, lambda W: W.size(1) * W.flatten(1).norm(dim=1).pow(-2))
    assert_passes(cd, cd_cos_form)
    assert_passes(cd, cd_gram_rows)
    assert_passes(cd, cd_normalize)


def cd_self_plus_largest_other(W):
    norms_sq = W.pow(2).sum(1)
    overlaps = einops.einsum(W, W, "k d i, k d j -> k i j").pow(2)
    others = (overlaps - torch.diag_embed(torch.diagonal(overlaps, dim1=1, dim2=2))).amax(-1)
    den = norms_sq**2 + others
    return torch.where(den > 0, norms_sq**2 / den, 0.0)


def test_largest_other_overlap_only_is_named():
    err = assert_fails(cd, cd_self_plus_largest_other, "max_not_sum")
    assert "largest" in err.hint
