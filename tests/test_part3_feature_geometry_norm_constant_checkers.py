"""Proofs for part 3 after the fresh27 measurement: compute_dimensionality with a constant added in the
normalisation, Ŵ = W / (‖W‖ + c) or W / √(‖W‖² + c), is named with the constant read back from the values (the
columns have different norms, so one c fits only that reading)."""

from __future__ import annotations

import tests.part3_feature_geometry as p3
from tests.proving import assert_fails, assert_passes


def _normalised(norm_of):
    def compute_dimensionality(W):
        W_hat = W / norm_of(W.norm(dim=1, keepdim=True))
        return (W.pow(2).sum(1) / (W_hat.mT @ W).pow(2).sum(-1)).nan_to_num(0.0)  # 0 for a zero column

    return compute_dimensionality


def test_norm_plus_one_is_named():
    failure = assert_fails(p3.test_compute_dimensionality, _normalised(lambda n: n + 1), "norm_plus_constant")
    assert "W_i / (‖W_i‖ + 1)" in failure.message


def test_squared_norm_plus_constant_is_named():
    failure = assert_fails(
        p3.test_compute_dimensionality, _normalised(lambda n: (n**2 + 0.5).sqrt()), "norm_plus_constant"
    )
    assert "√(‖W_i‖² + 0.5)" in failure.message


def test_a_tiny_eps_passes():
    assert_passes(p3.test_compute_dimensionality, _normalised(lambda n: n + 1e-9))
