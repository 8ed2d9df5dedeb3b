"""Proofs for section 3 (round AV): compute_dimensionality with W.norm(1, keepdim=True) (the 1 read as the order p:
one L1 norm of the whole tensor) is named as a positional p; every column divided by the instance's largest column
norm is named as one norm per instance; the sum over j restricted to 'represented' features is read back as a sum
over a subset with a norm threshold; and the round's correct variants pass."""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import tests.part3_feature_geometry as checks
from tests.proving import assert_fails, assert_passes


def _where(num, den):
    return torch.where(den > 0, num / den.clamp_min(torch.finfo(num.dtype).tiny), torch.zeros_like(num))


def test_norm_positional_p():
    def compute_dimensionality(W):
        norms_sq = W.pow(2).sum(1)
        unit = W / W.norm(1, keepdim=True).clamp_min(1e-12)
        den = einops.einsum(unit, W, "inst d i, inst d j -> inst i j").pow(2).sum(-1)
        return _where(norms_sq, den)

    failure = assert_fails(checks.test_compute_dimensionality, compute_dimensionality, "norm_positional_p")
    assert "order p" in str(failure)


def test_normalise_by_max_norm():
    def compute_dimensionality(W):
        norms_sq = W.pow(2).sum(1)
        unit = W / W.norm(dim=1, keepdim=True).amax(-1, keepdim=True).clamp_min(1e-12)
        den = einops.einsum(unit, W, "inst d i, inst d j -> inst i j").pow(2).sum(-1)
        return _where(norms_sq, den)

    failure = assert_fails(checks.test_compute_dimensionality, compute_dimensionality, "normalised_by_one_norm")
    assert "largest column norm" in str(failure)


def test_represented_j_only():
    def compute_dimensionality(W):
        norms_sq = W.pow(2).sum(1)
        unit = W / W.norm(dim=1, keepdim=True).clamp_min(1e-12)
        ov = einops.einsum(unit, W, "inst d i, inst d j -> inst i j")
        mask = (norms_sq > 0.5)[:, None, :]
        den = (ov.pow(2) * mask).sum(-1)
        return _where(norms_sq, den)

    failure = assert_fails(checks.test_compute_dimensionality, compute_dimensionality, "sum_over_subset")
    assert "threshold" in str(failure)


def test_correct_cosine_similarity():
    def compute_dimensionality(W):
        cos = F.cosine_similarity(W[:, :, :, None], W[:, :, None, :], dim=1)
        norms_sq = W.pow(2).sum(1)
        den = (cos.pow(2) * norms_sq[:, None, :]).sum(-1)
        safe = torch.where(den > 0, den, torch.ones_like(den))
        return torch.where(norms_sq > 0, norms_sq / safe, torch.zeros_like(den))

    assert_passes(checks.test_compute_dimensionality, compute_dimensionality)


def test_correct_vmap():
    def single(Wk):
        G = Wk.T @ Wk
        n2 = torch.diagonal(G)
        den = (G * G).sum(0)
        safe = torch.where(den > 0, den, torch.ones_like(den))
        return torch.where(den > 0, n2 * n2 / safe, torch.zeros_like(n2))

    assert_passes(checks.test_compute_dimensionality, lambda W: torch.vmap(single)(W))
