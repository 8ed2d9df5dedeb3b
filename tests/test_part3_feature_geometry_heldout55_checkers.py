"""Proofs for section 3 (held-out round BB): compute_dimensionality reads back two slips at once
(tests/part3_feature_geometry_slip_pairs.py composes every pair of wrong choices in the formula: normalisation axis,
which side is normalised, |·| or a signed overlap for its square, sum over i, self term left out or added as ‖W_i‖²,
mean for sum, numerator power) and names both (the one-divisor read-back defers to it when its divisor² is the
feature count, a mean with no normalisation). dimensions_per_feature (tests/part3_feature_geometry_dpf_readbacks.py)
names a float64 result for a float32 W (upcast, where the shared dtype hint named other sources), and reads a wrong
value back: a numerator that counts represented features (counted_numerator), denominators moved between instances
by a running maximum (instances_moved), and a denominator rounded through float16 (low_precision);
compute_dimensionality names the upcast too (the proof dim_float64 of test_part3_feature_geometry_checkers.py now
asserts it). Both checkers name a result rounded to a few decimals (rounded_output,
tests/part3_feature_geometry_rounded.py). The round's correct variants pass."""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import solutions.part3_feature_geometry as ref
import tests.part3_feature_geometry as checks
from tests.proving import assert_fails, assert_passes

dpf, cd = checks.test_dimensions_per_feature, checks.test_compute_dimensionality


def _overlaps(W, axis=1):
    unit = W / W.norm(dim=axis, keepdim=True).clamp_min(1e-12)
    return W.pow(2).sum(1), einops.einsum(unit, W, "i d a, i d b -> i a b")


def _guarded(n, den):
    return torch.where(den > 0, n / den, torch.zeros_like(n))


def cd_abs_sum_over_i(W):
    n, dots = _overlaps(W)
    return _guarded(n, dots.abs().sum(-2))


def cd_no_self_mean(W):
    n, dots = _overlaps(W)
    eye = torch.eye(W.shape[2], dtype=torch.bool, device=W.device)
    return _guarded(n, dots.pow(2).masked_fill(eye, 0).mean(-1))


def cd_feature_axis_abs(W):
    n, dots = _overlaps(W, axis=2)
    return _guarded(n, dots.abs().sum(-1))


def cd_unnormalised_mean(W):  # c² = feats in one_divisor_failure's read-back: it defers to the pairs
    n = W.pow(2).sum(1)
    return _guarded(n, einops.einsum(W, W, "i d a, i d b -> i a b").pow(2).mean(-1))


def test_two_slips_named():
    for impl in (cd_abs_sum_over_i, cd_no_self_mean, cd_feature_axis_abs, cd_unnormalised_mean):
        err = assert_fails(cd, impl, "two_slips")
        assert "(1)" in err.message and "(2)" in err.message


def test_correct_variants_pass():
    def cos_times_norm(W):
        n = W.pow(2).sum(1)
        unit = F.normalize(W, dim=1)
        den = ((unit.mT @ unit).pow(2) * n[:, None, :]).sum(-1)
        return torch.where(den > 0, n / den.clamp_min(1e-30), torch.zeros_like(n))

    def diag_gram_squared(W):
        G = W.mT @ W
        n = torch.diagonal(G, dim1=1, dim2=2)
        den = torch.diagonal(G @ G, dim1=1, dim2=2)
        return torch.where(den > 0, n**2 / den, torch.zeros_like(n))

    for impl in (cos_times_norm, diag_gram_squared):
        assert_passes(cd, impl)


def dpf_counted_numerator(W):
    return (W.norm(dim=1) > 0.5).sum(-1).to(W.dtype) / W.pow(2).sum((1, 2))


def dpf_running_max(W):
    return W.shape[1] / W.pow(2).sum((1, 2)).cummax(0).values


def dpf_half_denominator(W):
    return W.shape[1] / W.pow(2).sum((1, 2)).half().to(W.dtype)


def dpf_upcast(W):
    return W.shape[1] / W.double().pow(2).sum((1, 2))


def test_dpf_readbacks_named():
    assert "represented features" in assert_fails(dpf, dpf_counted_numerator, "counted_numerator").hint
    assert "cummax" in assert_fails(dpf, dpf_running_max, "instances_moved").hint
    assert_fails(dpf, dpf_half_denominator, "low_precision")
    assert ".double()" in assert_fails(dpf, dpf_upcast, "upcast").hint


def test_dpf_correct_variants_pass():
    def row_norms(W):
        return W.shape[1] / W.norm(dim=-1).pow(2).sum(-1)

    def singular_values(W):
        return W.shape[-2] / torch.linalg.svdvals(W).pow(2).sum(-1)

    for impl in (row_norms, singular_values):
        assert_passes(dpf, impl)


def test_rounded_output_named():
    rounded = lambda W: (W.shape[1] / W.pow(2).sum((1, 2))).round(decimals=3)
    assert "3 decimals" in assert_fails(dpf, rounded, "rounded_output").message
    assert (
        "2 decimals"
        in assert_fails(cd, lambda W: ref.compute_dimensionality(W).round(decimals=2), "rounded_output").message
    )
