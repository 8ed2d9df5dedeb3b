"""Proofs for part 3's fresh19 held-out fixes: dimensions_per_feature as a sum (or mean) of per-feature ratios, and
‖W‖²_F summed over only some features (a norm threshold, a slice) named by the features kept; compute_dimensionality
with the [d d] matrix W Wᵀ applied twice (‖M ŵ‖² for ŵᵀ M ŵ)."""

from __future__ import annotations

import torch

import tests.part3_feature_geometry as p3
from tests.proving import assert_fails


def dpf_sum_of_ratios(W):
    return (W.shape[1] / W.pow(2).sum(1)).sum(-1)


def dpf_mean_of_ratios(W):
    return (W.shape[1] / W.pow(2).sum(1)).mean(-1)


def dpf_represented(W):
    sq = W.pow(2).sum(1)
    return W.shape[1] / (sq * (sq.sqrt() > 0.5)).sum(-1)


def dpf_drop_last(W):
    return W.shape[1] / W[..., :-1].pow(2).sum((1, 2))


def cd_gram_twice(W):
    sq = W.pow(2).sum(1)
    unit = W / sq.sqrt().clamp_min(1e-12)[:, None]
    M = torch.einsum("kdf,kef->kde", W, W)
    return sq / torch.einsum("kde,kef->kdf", M, unit).pow(2).sum(1).clamp_min(1e-12)


def test_dpf_ratios_and_subsets_named():
    check = p3.test_dimensions_per_feature
    err = assert_fails(check, dpf_sum_of_ratios, "ratio_per_feature")
    assert "sum over features of d_hidden / ‖W_i‖²" in err.hint
    assert_fails(check, dpf_mean_of_ratios, "ratio_per_feature")
    err = assert_fails(check, dpf_represented, "features_subset")
    assert "above a threshold" in err.hint and "only some features" in err.message
    err = assert_fails(check, dpf_drop_last, "features_subset")
    assert "features [0, 1, 2, 3, 4, 5, 6]" in err.message and "left out" in err.hint


def test_cd_gram_applied_twice_named():
    err = assert_fails(p3.test_compute_dimensionality, cd_gram_twice, "gram_applied_twice")
    assert "M = W Wᵀ" in err.hint and "applied twice" in err.hint
