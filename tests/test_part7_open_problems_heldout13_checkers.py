"""Proofs for part 7: generate_features called with float64 probabilities (the output stays float32); basis_alignment
over the norm of the other entries."""

from __future__ import annotations

import torch

import solutions.part7_open_problems as sol
import tests.part7_open_problems as checks
from tests.proving import assert_fails, assert_passes


def test_values_drawn_in_the_probabilities_dtype_are_named():
    def generate_features(p, batch_size, values="uniform"):
        out = sol.generate_features(p, batch_size, values)
        return out.to(p.dtype)  # float64 in, float64 out

    failure = assert_fails(checks.test_generate_features, generate_features, code="dtype_follows_p")
    assert "float64" in failure.message


def test_float32_whatever_the_probabilities_dtype_passes():
    assert_passes(
        checks.test_generate_features, lambda p, b, values="uniform": sol.generate_features(p.float(), b, values)
    )
    assert_passes(checks.test_generate_features, sol.generate_features)
    assert torch.float32 == sol.generate_features(torch.full((2, 3), 0.5, dtype=torch.float64), 4).dtype


def test_alignment_over_the_other_entries_norm_is_named():
    """The denominator as the norm of the other entries, sqrt(Σ W² − max W²) (a one-hot column then gives 0 / 0,
    guarded to 0)."""

    def basis_alignment(W):
        top = W.abs().amax(1)
        rest = (W.pow(2).sum(1) - top**2).clamp(min=0).sqrt()
        return torch.where(rest > 0, top / rest.clamp(min=1e-12), 0.0)

    err = assert_fails(checks.test_basis_alignment, basis_alignment, "denominator_others")
    assert "OTHER entries" in err.message
