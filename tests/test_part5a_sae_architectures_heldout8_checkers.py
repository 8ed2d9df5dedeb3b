"""Proofs for part 5a's catalogue entries added after the fresh17 held-out measurement: FVE as the squared
correlation of h and h_rec, FVE's total without the 1/n, feature recovery with the decoder rows divided by their
largest |entry|, and with + 1 in the norms' denominators."""

from __future__ import annotations

import torch

import tests.part5a_sae_architectures as checks
from tests.proving import assert_fails


def test_fve_squared_correlation():
    def fve(h, h_rec):
        out = [
            torch.corrcoef(torch.stack([h[:, i].flatten(), h_rec[:, i].flatten()]))[0, 1] ** 2
            for i in range(h.shape[1])
        ]
        return torch.stack(out)

    assert_fails(checks.test_fraction_variance_explained, fve, "fve_correlation")


def test_fve_total_without_the_n():
    def fve(h, h_rec):
        total = (h.pow(2).sum(0) - h.sum(0).pow(2)).sum(-1)
        return 1 - (h - h_rec).pow(2).sum((0, 2)) / total

    failure = assert_fails(checks.test_fraction_variance_explained, fve, "fve_total_no_n")
    assert "/n" in failure.hint


def _recovery(dec_norm, eps):
    def feature_recovery(W_features, W_dec):
        f = W_features / (W_features.norm(dim=1, keepdim=True) + eps)
        d = W_dec / (dec_norm(W_dec) + eps)
        return torch.einsum("isd,idf->isf", d, f).amax(1)

    return feature_recovery


def test_recovery_decoder_divided_by_its_largest_entry():
    inf = lambda W: W.abs().amax(-1, keepdim=True)
    assert_fails(checks.test_feature_recovery, _recovery(inf, 1e-8), "dec_inf_norm")


def test_recovery_plus_one_in_the_denominators():
    l2 = lambda W: W.norm(dim=-1, keepdim=True)
    assert_fails(checks.test_feature_recovery, _recovery(l2, 1.0), "norm_plus_one")
