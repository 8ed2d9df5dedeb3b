"""Proofs for the part 5a metric readings found by a search: prefixes / suffixes of the batch of every length,
L0 with a relative threshold, FVE totals read back from the output, sorted outputs, recovery centred wrongly."""

import torch

import tests.part5a_sae_architectures as C
from tests.proving import assert_fails, assert_passes


def test_dead_on_a_prefix_of_the_batch_is_not_called_one_example():
    impl = lambda a: (a[:100] == 0).all(0).to(a.dtype).mean(-1)
    failure = assert_fails(C.test_dead_latent_fraction, impl, "example_dropped_last")
    assert "can't tell how many" in failure.hint and "one example" not in failure.hint


def test_l0_relative_threshold_is_named():
    impl = lambda a: (a.abs() > a.abs().mean()).to(a.dtype).sum(-1).mean(0)
    failure = assert_fails(C.test_l0_norm, impl, "relative_threshold")
    assert "mean |a| over the whole tensor" in failure.hint


def _fve(total):
    return lambda h, hr: 1 - (h - hr).pow(2).sum((0, 2)) / total(h)


def test_fve_total_centred_on_first_example_is_named():
    failure = assert_fails(
        C.test_fraction_variance_explained, _fve(lambda h: (h - h[:1]).pow(2).sum((0, 2))), "fve_wrong_total"
    )
    assert "first example" in failure.message


def test_fve_total_energy_of_the_mean_is_named():
    impl = _fve(lambda h: h.mean(0, keepdim=True).expand_as(h).pow(2).sum((0, 2)))
    failure = assert_fails(C.test_fraction_variance_explained, impl, "fve_wrong_total")
    assert "energy of the batch mean" in failure.message


def test_fve_total_first_coordinate_only_is_named():
    impl = _fve(lambda h: (h - h.mean(0, keepdim=True))[..., 0].pow(2).sum(0))
    failure = assert_fails(C.test_fraction_variance_explained, impl, "fve_wrong_total")
    assert "coordinate 0 only" in failure.message


def _rec(W_feat, W_dec):
    F = W_feat / W_feat.norm(dim=1, keepdim=True)
    return torch.einsum("isd,idf->isf", W_dec / W_dec.norm(dim=-1, keepdim=True), F).amax(1)


def test_recovery_sorted_over_features_is_named():
    impl = lambda Wf, Wd: _rec(Wf, Wd).sort(-1, descending=True).values
    failure = assert_fails(C.test_feature_recovery, impl, "sorted_output")
    assert "sorted best-first" in failure.hint


def test_recovery_features_centred_over_feature_axis_is_named():
    impl = lambda Wf, Wd: _rec(Wf - Wf.mean(-1, keepdim=True), Wd)
    failure = assert_fails(C.test_feature_recovery, impl, "centred_wrong_axis")
    assert "feature axis" in failure.hint


def test_l0_and_dead_positive_only_counts_still_pass():
    assert_passes(C.test_l0_norm, lambda a: (a > 0).to(a.dtype).sum(-1).mean(0))
    assert_passes(C.test_dead_latent_fraction, lambda a: (a > 0).logical_not().all(0).to(a.dtype).mean(-1))
