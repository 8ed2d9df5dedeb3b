"""Proofs for part 3 after the fresh43 measurement: D* with W.ndim, 2**W or the positive entries in it (the checker's W
has n_inst = 6, unlike W.ndim = 3 and every other count); compute_dimensionality with torch.where's values swapped,
`unit.mT @ W ** 2` (precedence) and the per-instance results joined with torch.cat."""

from __future__ import annotations

import torch

import solutions.part3_feature_geometry as ref
import tests.part3_feature_geometry as checks
from tests.proving import assert_fails, assert_passes


def test_dpf_ndim_numerator():
    failure = assert_fails(
        checks.test_dimensions_per_feature, lambda W: W.ndim / W.pow(2).sum(dim=(1, 2)), "numerator_ndim"
    )
    assert "W.ndim = 3" in failure.hint


def test_dpf_exp2():
    assert_fails(checks.test_dimensions_per_feature, lambda W: W.shape[1] / W.exp2().sum((1, 2)), "exp2_not_square")


def test_dpf_positive_part():
    assert_fails(
        checks.test_dimensions_per_feature,
        lambda W: W.shape[1] / W.clamp(min=0).pow(2).sum((1, 2)),
        "positive_part_only",
    )


def test_dpf_zero_instance_convention_passes():
    # an all-zero W is outside what the exercise defines (d_hidden / 0); returning 0 there is a correct variant
    def dpf(W):
        n2 = W.pow(2).sum(dim=(1, 2))
        return torch.where(n2 > 0, W.shape[1] / n2.clamp_min(1e-30), torch.zeros_like(n2))

    assert_passes(checks.test_dimensions_per_feature, dpf)


def test_where_swapped():
    def cd(W):
        n2 = W.pow(2).sum(1)
        den = (W.mT @ W).pow(2).sum(-1)
        return torch.where(den > 0, torch.zeros_like(n2), n2**2 / den)

    failure = assert_fails(checks.test_compute_dimensionality, cd, "where_swapped")
    assert "every position" in failure.message and "swapped" in failure.hint


def test_all_zero_output_observed_only():
    failure = assert_fails(
        checks.test_compute_dimensionality, lambda W: torch.zeros(W.shape[0], W.shape[2], dtype=W.dtype), "all_zero"
    )
    assert "swapped" not in failure.hint and "threshold" not in failure.hint


def test_squared_before_matmul():
    def cd(W):
        n2 = W.pow(2).sum(1)
        unit = W / n2.sqrt().clamp_min(1e-12)[:, None, :]
        den = (unit.mT @ W**2).sum(-1)
        return torch.where(n2 > 0, n2 / den.clamp_min(1e-30), torch.zeros_like(n2))

    failure = assert_fails(checks.test_compute_dimensionality, cd, "squared_before_matmul")
    assert "precedence" in failure.hint


def test_cat_not_stack():
    def cd(W):
        return torch.cat([ref.compute_dimensionality(w[None])[0] for w in W])

    failure = assert_fails(checks.test_compute_dimensionality, cd, "cat_not_stack")
    assert "torch.stack" in failure.hint


def test_where_fallback_norms_sq_passes():
    def cd(W):
        n2 = W.pow(2).sum(1)
        den = (W.mT @ W).pow(2).sum(-1)
        return torch.where(den > 0, n2**2 / den.clamp_min(1e-30), n2)

    assert_passes(checks.test_compute_dimensionality, cd)
