"""Proofs for part 5a's catalogue entries added after the fresh19 held-out measurement: l0 over the batch with the
first example dropped, FVE as 1 - a sum of per-coordinate ratios, and feature recovery with the normalised decoder
reshaped (not transposed), the cosine taken over the d_sae axis, or the features divided by their mean norm."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import tests.part5a_sae_architectures as checks
from tests.proving import assert_fails


def test_l0_first_example_dropped():
    assert_fails(checks.test_l0_norm, lambda acts: (acts[1:] != 0).float().sum(-1).mean(0), "example_dropped_first")


def test_fve_sum_of_ratios():
    def fve(h, h_rec):
        return 1 - ((h - h_rec).pow(2).sum(0) / (h - h.mean(0)).pow(2).sum(0)).sum(-1)

    assert_fails(checks.test_fraction_variance_explained, fve, "sum_of_ratios")


def _unit(W_dec):
    return W_dec / (W_dec.norm(dim=-1, keepdim=True) + 1e-8)


def test_recovery_decoder_reshaped():
    def rec(W_features, W_dec):
        f, d = W_features / (W_features.norm(dim=1, keepdim=True) + 1e-8), _unit(W_dec)
        d = d.reshape(d.shape[0], d.shape[2], d.shape[1])
        return torch.einsum("ids,idf->isf", d, f).max(dim=1).values

    assert_fails(checks.test_feature_recovery, rec, "decoder_reshaped")


def test_recovery_cosine_over_d_sae():
    def rec(W_features, W_dec):
        return F.cosine_similarity(W_dec[..., None], W_features[:, None], dim=1).amax(1)

    assert_fails(checks.test_feature_recovery, rec, "cosine_over_d_sae")


def test_recovery_mean_feature_norm():
    def rec(W_features, W_dec):
        f = W_features / W_features.norm(dim=1, keepdim=True).mean(-1, keepdim=True)
        return torch.einsum("isd,idf->isf", _unit(W_dec), f).max(dim=1).values

    assert_fails(checks.test_feature_recovery, rec, "mean_feature_norm")
