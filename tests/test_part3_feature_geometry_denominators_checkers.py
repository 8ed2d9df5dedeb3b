"""Proofs for part 3's denominator read-back (tests/part3_feature_geometry_denominators.py): a dimensionality whose
denominator is one sum over all pairs (i, j) per instance, in the raw form ‖W_i‖⁴ / Σ_ij (W_i·W_j)² and in the
normalised form ‖W_i‖² / Σ_ij (Ŵ_i·W_j)², is named denominator_constant with the all-pairs sum it equals."""

from __future__ import annotations

import tests.part3_feature_geometry as checks
from tests.proving import assert_fails


def cd_raw_all_pairs(W):
    n2 = W.pow(2).sum(1)
    return n2**2 / (W.mT @ W).pow(2).sum((-1, -2))[:, None]


def cd_unit_all_pairs(W):
    n2 = W.pow(2).sum(1)
    unit = W / n2.sqrt()[:, None]
    return n2 / (unit.mT @ W).pow(2).sum((-1, -2))[:, None]


def test_raw_form_all_pairs_is_named():
    failure = assert_fails(checks.test_compute_dimensionality, cd_raw_all_pairs, "denominator_constant")
    assert "‖W_i‖⁴" in failure.message and "Σ_i Σ_j (W_i·W_j)²" in failure.message


def test_normalised_form_all_pairs_is_named():
    failure = assert_fails(checks.test_compute_dimensionality, cd_unit_all_pairs, "denominator_constant")
    assert "‖W_i‖²" in failure.message and "Σ_i Σ_j (Ŵ_i·W_j)²" in failure.message
