"""Proofs for part 3 after the fresh38 measurement: D* divided by a statistic of W's norms other than ‖W‖²_F (the
mean of the feature-column norms, `column_norms_mean`)."""

from __future__ import annotations

import tests.part3_feature_geometry as p3
from tests.proving import assert_fails


def test_mean_of_column_norms():
    def dimensions_per_feature(W):
        return W.shape[1] / W.norm(dim=1).mean(-1)

    failure = assert_fails(p3.test_dimensions_per_feature, dimensions_per_feature, "column_norms_mean")
    assert "feature norms" in failure.hint


def test_sum_of_row_norms():
    def dimensions_per_feature(W):
        return W.shape[1] / W.norm(dim=2).sum(-1)

    assert_fails(p3.test_dimensions_per_feature, dimensions_per_feature, "row_norms_sum")
