"""Proofs for part 7 after the fresh25 measurement: argmax labels shifted by one (1-based, 0 for none) and a
denominator raised to a power (`norm ** 2 ** 0.5`, precedence: norm^√2), named by the fitted exponent."""

from __future__ import annotations

import torch

import solutions.part7_open_problems as ref
import tests.part7_open_problems as checks
from tests.proving import assert_fails


def test_argmax_labels_shifted():
    def compute_target(features, target):
        if target == "argmax":
            return torch.where((features != 0).any(-1), features.argmax(-1) + 1, 0)
        return ref.compute_target(features, target)

    failure = assert_fails(checks.test_compute_target, compute_target, "argmax_shifted_labels")
    assert "shifted up by one" in failure.hint


def test_norm_power_precedence():
    def basis_alignment(W):
        n = torch.norm(W, dim=1, p=2) ** 2**0.5
        return torch.where(n > 0, W.abs().amax(1) / n.clamp(min=1e-12), 0.0)

    failure = assert_fails(checks.test_basis_alignment, basis_alignment, "norm_power")
    assert "√2" in failure.message and "precedence" in failure.hint


def test_norm_power_cubed():  # any exponent, not only √2
    def basis_alignment(W):
        n = W.norm(dim=1) ** 3
        return torch.where(n > 0, W.abs().amax(1) / n.clamp(min=1e-12), 0.0)

    assert_fails(checks.test_basis_alignment, basis_alignment, "norm_power")
