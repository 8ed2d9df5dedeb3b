"""Proofs for part 5a's generic metric readings (tests/part5a_sae_architectures_metric_readings.py): a mean over a
count off by one, a latent or example slice dropped, instance 0's value for every instance, the FVE's ratio
rearranged or centred on a pooled mean, and feature recovery's cosine rescaled or averaged over the top two
latents are each named; the correct forms the trials used still pass."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import tests.part5a_sae_architectures as C
from tests.proving import assert_fails, assert_passes


def _count(a):
    return (a != 0).to(a.dtype)


def test_l0_bessel_divisor_is_named():
    failure = assert_fails(
        C.test_l0_norm, lambda a: _count(a).sum(-1).sum(0) / (a.shape[0] - 1), "mean_count_off_by_one"
    )
    assert "batch - 1" in failure.hint


def test_l0_first_latent_skipped_is_named():
    impl = lambda a: sum(_count(a[..., j]) for j in range(1, a.shape[-1])).mean(0)
    failure = assert_fails(C.test_l0_norm, impl, "latent_dropped")
    assert "first" in failure.hint


def test_l0_norm_ord0_passes():
    assert_passes(C.test_l0_norm, lambda a: torch.linalg.vector_norm(a, ord=0, dim=-1).mean(0))


def _fve_parts(h, h_rec):
    return (h - h_rec).pow(2).sum((0, 2)), (h - h.mean(0, keepdim=True)).pow(2).sum((0, 2))


def test_fve_over_residual_is_named():
    def impl(h, h_rec):
        res, tot = _fve_parts(h, h_rec)
        return (tot - res) / res

    assert "(T - R) / R" in assert_fails(C.test_fraction_variance_explained, impl, "ratio_rearranged").hint


def test_fve_plus_residual_is_named():
    def impl(h, h_rec):
        res, tot = _fve_parts(h, h_rec)
        return 1 - res / (tot + res)

    assert "1 - R / (T + R)" in assert_fails(C.test_fraction_variance_explained, impl, "ratio_rearranged").hint


def test_fve_pooled_shortcut_is_named():
    def impl(h, h_rec):
        res, _ = _fve_parts(h, h_rec)
        return 1 - res / (h.pow(2).sum((0, 2)) - h.sum((0, 2)).pow(2) / h.shape[0])

    failure = assert_fails(C.test_fraction_variance_explained, impl, "mean_pooled_axes")
    assert "pooled over batch and d_in" in failure.hint


def test_dead_first_latent_skipped_over_d_sae_is_named():
    impl = lambda a: (a[..., 1:] == 0).all(0).to(a.dtype).sum(-1) / a.shape[-1]
    failure = assert_fails(C.test_dead_latent_fraction, impl, "latent_dropped")
    assert "divided by d_sae" in failure.hint


def test_dead_last_example_dropped_is_named():
    impl = lambda a: (a[:-1] == 0).all(0).to(a.dtype).mean(-1)
    assert_fails(C.test_dead_latent_fraction, impl, "example_dropped_last")


def test_dead_first_example_dropped_is_named():
    impl = lambda a: (a[1:] == 0).all(0).to(a.dtype).mean(-1)
    assert_fails(C.test_dead_latent_fraction, impl, "example_dropped_first")


def test_dead_instance0_for_all_is_named():
    impl = lambda a: (a[:, :1] == 0).all(0).to(a.dtype).mean(-1).expand(a.shape[1])
    failure = assert_fails(C.test_dead_latent_fraction, impl, "first_instance_for_all")
    assert "instance 0" in failure.hint


def test_dead_one_minus_active_passes():
    assert_passes(C.test_dead_latent_fraction, lambda a: 1 - (a != 0).any(0).to(a.dtype).mean(-1))


def _cos(W_feat, W_dec):
    return F.cosine_similarity(W_dec[..., None], W_feat[:, None], dim=2)  # [inst d_sae feats]


def test_recovery_rescaled_cosine_is_named():
    impl = lambda W_feat, W_dec: (_cos(W_feat, W_dec).amax(1) + 1) / 2
    assert_fails(C.test_feature_recovery, impl, "cosine_rescaled")


def test_recovery_top2_mean_is_named():
    impl = lambda W_feat, W_dec: _cos(W_feat, W_dec).topk(2, dim=1).values.mean(1)
    assert "2 best" in assert_fails(C.test_feature_recovery, impl, "topk_mean").hint


def test_recovery_broadcast_cosine_passes():
    assert_passes(C.test_feature_recovery, lambda W_feat, W_dec: _cos(W_feat, W_dec).amax(1))
