"""Proofs for section 4 (held-out round BB): compute_dimensionality names two slips at once with part 3's pair
read-back (|·| overlaps with the self term added as ‖v_i‖²). The round's correct variants pass."""

from __future__ import annotations

import einops
import torch

import tests.part4_double_descent as checks
from tests.proving import assert_fails, assert_passes


def cd_abs_off_diagonal_plus_self(v):
    n2 = v.pow(2).sum(-1)
    unit = v / n2.sqrt().clamp_min(1e-12)[..., None]
    dots = einops.einsum(unit, v, "k i d, k j d -> k i j")
    eye = torch.eye(v.shape[1], dtype=torch.bool, device=v.device)
    den = dots.abs().masked_fill(eye, 0).sum(-1) + n2
    return torch.where(n2 > 0, n2 / den, torch.zeros_like(n2))


def test_two_slips_named():
    assert_fails(checks.test_compute_dimensionality, cd_abs_off_diagonal_plus_self, "two_slips")


def test_correct_variants_pass():
    def gram_matmul(v):
        n2 = v.pow(2).sum(-1)
        unit = v / n2.sqrt().clamp_min(1e-12)[..., None]
        den = ((unit @ (v.mT @ v)) * unit).sum(-1)
        return torch.where(n2 > 0, n2 / den.clamp_min(1e-30), torch.zeros_like(n2))

    assert_passes(checks.test_compute_dimensionality, gram_matmul)
