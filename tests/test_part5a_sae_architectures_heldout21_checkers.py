"""Proofs for part 5a's metrics after the fresh39/fresh40 measurements: feature_recovery's inputs hold a feature
whose best cosine is negative (so |max cos| is caught and named), -min cos is named, a cosine whose vectors are
divided by another norm (L1, ‖w‖², max |w|) is named per side; an FVE whose total is about 0 (summed before
squaring) is named with its numerator read back; an L0 counting activations above a threshold t > 0 names t
(and acts.std() when that is it). Correct variants (acts > 0, F.normalize, F.cosine_similarity) still pass."""

from __future__ import annotations

import einops
import torch.nn.functional as F

import tests.part5a_sae_architectures as C
from tests.proving import assert_fails, assert_passes


def _cos(Wf, Wd, dec_div, feat_div):
    return einops.einsum(Wd / dec_div(Wd, -1), Wf / feat_div(Wf, 1), "i s d, i d f -> i s f")


def _l2(w, dim):
    return w.norm(dim=dim, keepdim=True) + 1e-8


def test_abs_of_best_cosine_is_caught_and_named():
    failure = assert_fails(
        C.test_feature_recovery, lambda Wf, Wd: _cos(Wf, Wd, _l2, _l2).max(1).values.abs(), "abs_of_max"
    )
    assert "inst 1, feats 3" in failure.message and "without .abs()" in failure.hint


def test_negated_min_cosine_is_named():
    failure = assert_fails(C.test_feature_recovery, lambda Wf, Wd: -_cos(Wf, Wd, _l2, _l2).min(1).values, "neg_min")
    assert "-min" in failure.hint


def test_other_norms_are_named_per_side():
    l1 = lambda w, dim: w.norm(p=1, dim=dim, keepdim=True)
    sq = lambda w, dim: w.pow(2).sum(dim, keepdim=True)
    failure = assert_fails(C.test_feature_recovery, lambda Wf, Wd: _cos(Wf, Wd, l1, l1).max(1).values, "norm_kind")
    assert "both" in failure.hint and "L1 norm" in failure.hint
    failure = assert_fails(C.test_feature_recovery, lambda Wf, Wd: _cos(Wf, Wd, sq, sq).max(1).values, "norm_kind")
    assert "squared L2 norm" in failure.hint
    failure = assert_fails(C.test_feature_recovery, lambda Wf, Wd: _cos(Wf, Wd, _l2, l1).max(1).values, "norm_kind")
    assert "W_dec rows by their L2 norm and the W_features columns by their L1 norm" in failure.hint


def test_recovery_correct_variants_pass():
    assert_passes(
        C.test_feature_recovery,
        lambda Wf, Wd: einops.einsum(F.normalize(Wd, dim=-1), F.normalize(Wf, dim=1), "i s d, i d f -> i s f").amax(1),
    )
    assert_passes(
        C.test_feature_recovery,
        lambda Wf, Wd: F.cosine_similarity(Wd[:, :, None, :], Wf.transpose(1, 2)[:, None], dim=-1, eps=1e-8).amax(1),
    )


def test_fve_summed_before_squaring_is_named():
    def both(h, hr):
        return 1 - (h - hr).sum((0, 2)).pow(2) / (h - h.mean(0, keepdim=True)).sum((0, 2)).pow(2)

    failure = assert_fails(C.test_fraction_variance_explained, both, "total_near_zero")
    assert "summed before squaring" in failure.hint and "numerator is (Σ(h - h_rec))²" in failure.hint

    def total_only(h, hr):
        return 1 - (h - hr).pow(2).sum((0, 2)) / (h - h.mean(0)).sum(-1).sum(0).pow(2)

    failure = assert_fails(C.test_fraction_variance_explained, total_only, "total_near_zero")
    assert "numerator is Σ(h - h_rec)², right" in failure.hint

    def residual_only(h, hr):
        return 1 - (h - hr).sum((0, 2)).pow(2) / (h - h.mean(0, keepdim=True)).pow(2).sum((0, 2))

    assert_fails(C.test_fraction_variance_explained, residual_only, "sum_before_square")


def test_l0_threshold_above_zero_is_named():
    failure = assert_fails(
        C.test_l0_norm, lambda a: (a.abs() > a.std()).to(a.dtype).sum(-1).mean(0), "active_threshold"
    )
    assert "acts.std()" in failure.hint
    per_instance = lambda a: (a > a.std((0, 2), keepdim=True)).to(a.dtype).sum(-1).mean(0)
    failure = assert_fails(C.test_l0_norm, per_instance, "active_threshold")
    assert "per instance" in failure.hint and "the instance's std" in failure.hint
    failure = assert_fails(C.test_l0_norm, lambda a: (a > 0.37).to(a.dtype).sum(-1).mean(0), "active_threshold")
    assert "between 0.3" in failure.hint
    assert_passes(C.test_l0_norm, lambda a: (a > 0).to(a.dtype).sum(-1).mean(0))
