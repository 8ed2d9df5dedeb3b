"""Proofs for part 3's fresh26 fixes: D* capped at 1 (or its denominator floored) is read back as min(1, right) over
a normal and a small W and both readings are named; D_i with its denominator floored by clamp_min(1) is named by the
same mechanism; ‖W_i‖ taken as the L1 norm of the column is named."""

from __future__ import annotations

import tests.part3_feature_geometry as p3
from tests.proving import assert_fails


def dpf_cap(W):
    return (W.shape[1] / W.pow(2).sum(dim=(1, 2))).clamp(max=1.0)


def dpf_floor(W):
    return W.shape[1] / W.pow(2).sum(dim=(1, 2)).clamp_min(1)


def dpf_l1(W):
    return W.shape[1] / W.abs().sum(1).pow(2).sum(-1)


def cd_floor(W):
    n2 = W.pow(2).sum(1)
    return n2**2 / (W.mT @ W).pow(2).sum(-1).clamp_min(1)


def test_capped_result_is_named_with_the_floor_reading():
    err = assert_fails(p3.test_dimensions_per_feature, dpf_cap, "small_norm")
    assert "min(1, d_hidden" in err.message and "cap on the result" in err.hint
    assert "floor on the denominator" in err.hint


def test_denominator_floor_is_named():
    err = assert_fails(p3.test_dimensions_per_feature, dpf_floor, "small_norm")
    assert err.hint.index("floor on the denominator at 1") < err.hint.index("cap")


def test_l1_column_norms_are_named():
    err = assert_fails(p3.test_dimensions_per_feature, dpf_l1, "l1_norms_squared")
    assert "L1" in err.hint


def test_dimensionality_denominator_floor_is_named():
    err = assert_fails(p3.test_compute_dimensionality, cd_floor, "bent_ratio")
    assert "max(Σ_j (W_i·W_j)², 1)" in err.message and "clamp_min(1)" in err.hint
