"""Proofs for part 7 after the fresh39 measurement: basis_alignment's denominator read back as a norm slip
(`denominator_reading`): `sum(W²) ** 1/2`, half the squared norm by operator precedence (the squared-norm and
mean-square readings share the code)."""

from __future__ import annotations

import torch

import tests.part7_open_problems as p7
from tests.proving import assert_fails


def test_half_squared_norm_by_precedence():
    def basis_alignment(W):
        n = (W**2).sum(1) ** 1 / 2
        return torch.where(n > 0, W.abs().amax(1) / n.clamp(min=1e-12), 0.0)

    failure = assert_fails(p7.test_basis_alignment, basis_alignment, "denominator_reading")
    assert "half the squared norm" in failure.message
