"""Proofs for part 3 after the fresh42 measurement: compute_dimensionality with its output sorted per instance (a
permutation of the right values, read back as a sort: `permuted`)."""

from __future__ import annotations

import solutions.part3_feature_geometry as ref
import tests.part3_feature_geometry as checks
from tests.proving import assert_fails


def test_sorted_dimensionality():
    def cd(W):
        return ref.compute_dimensionality(W).sort(dim=-1, descending=True).values

    failure = assert_fails(checks.test_compute_dimensionality, cd, "permuted")
    assert "descending" in failure.message and "own order" in failure.hint
