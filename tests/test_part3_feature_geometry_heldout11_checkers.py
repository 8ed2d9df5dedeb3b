"""Proofs for part 3 after the fresh41 measurement: D* read as the mean of the per-feature D_i
(`mean_feature_dimensionality`), D* divided by Σ_i ‖W_i‖⁴ (`norms_fourth_power`), and a floor of 1e-6 on
compute_dimensionality's denominator named by the tiny-feature probe (`small_feature`)."""

from __future__ import annotations

import solutions.part3_feature_geometry as ref
import tests.part3_feature_geometry as p3
from tests.proving import assert_fails


def test_mean_of_per_feature_dimensionality():
    def dimensions_per_feature(W):
        return ref.compute_dimensionality(W).mean(-1)

    failure = assert_fails(p3.test_dimensions_per_feature, dimensions_per_feature, "mean_feature_dimensionality")
    assert "mean over the features" in failure.hint


def test_fourth_powers_of_norms():
    def dimensions_per_feature(W):
        return W.shape[1] / (W.pow(2).sum(1) ** 2).sum(-1)

    assert_fails(p3.test_dimensions_per_feature, dimensions_per_feature, "norms_fourth_power")


def test_denominator_floor_1e6():
    def compute_dimensionality(W):
        n2 = W.pow(2).sum(1)
        unit = W / n2.sqrt().clamp_min(1e-12)[:, None]
        return n2 / (unit.mT @ W).pow(2).sum(-1).clamp_min(1e-6)

    assert_fails(p3.test_compute_dimensionality, compute_dimensionality, "small_feature")
