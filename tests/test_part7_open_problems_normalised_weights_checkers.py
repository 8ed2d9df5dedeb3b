"""Proofs for part 7: basis_alignment as the max over neurons of a softmax of |W| (|W| normalised over the hidden
axis instead of divided by ‖Wᵢ‖) is named (normalised_weights), with or without the zero-column guard."""

from __future__ import annotations

import torch

import tests.part7_open_problems as checks
from tests.proving import assert_fails, assert_passes


def test_softmax_numerator_is_named():
    def softmax_alignment(W):
        n = W.norm(dim=1)
        return torch.where(n > 0, W.abs().softmax(1).amax(1), 0.0)

    failure = assert_fails(checks.test_basis_alignment, softmax_alignment, "normalised_weights")
    assert "softmax(|W_ki|)" in failure.hint
    assert "max|W_ki| / ‖Wᵢ‖" in failure.hint


def test_softmax_without_guard_is_named():
    failure = assert_fails(checks.test_basis_alignment, lambda W: W.abs().softmax(1).amax(1), "normalised_weights")
    assert "softmax" in failure.hint


def test_right_alignment_passes():
    def alignment(W):
        n = W.norm(dim=1)
        return torch.where(n > 0, W.abs().amax(1) / n.clamp(min=1e-12), 0.0)

    assert_passes(checks.test_basis_alignment, alignment)
