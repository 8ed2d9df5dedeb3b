"""Proofs for part 7's probes added after the fresh8 held-out measurement (`tests.part7_open_problems_probes`):
absent features that are not 0, the features each output of a pair target reads, an affinely rescaled alignment."""

from __future__ import annotations

import math

import torch

import solutions.part7_open_problems as ref
import tests.part7_open_problems as checks
from tests.proving import assert_fails, assert_passes


def _features(after):
    """generate_features whose output goes through `after(out, values)` once masked."""

    def generate_features(p, n, values="uniform"):
        out = ref.generate_features(p, n, values)
        return after(out, values)

    return generate_features


def test_signed_uniform_rescaled_after_masking():  # absent entries become -1: named, not "present everywhere"
    def shift(out, values):
        if values != "signed_uniform":
            return out
        return 2 * ((out + 1) / 2 * (out != 0)) - 1  # U[0, 1] values masked, then 2x - 1

    assert_fails(checks.test_generate_features, _features(shift), "absent_not_zero")


def test_uniform_never_masked():  # the mask forgotten: every feature present everywhere, not "shared over batch"
    def unmasked(out, values):
        return torch.rand_like(out) if values == "uniform" else out

    assert_fails(checks.test_generate_features, _features(unmasked), "never_absent")


def test_constant_absent_one():  # constant kind with absent entries 1 + the present ones 1: every entry is 1
    def ones(out, values):
        return torch.ones_like(out) if values == "constant" else out

    assert_fails(checks.test_generate_features, _features(ones), "absent_not_zero")


def _target(target, fn):
    def compute_target(features, which):
        return fn(features) if which == target else ref.compute_target(features, which)

    return compute_target


def test_pairs_read_adjacent_features():
    n = lambda x: x.shape[-1] // 2
    adjacent = lambda x: torch.maximum(x[..., : n(x)], x[..., 1 : n(x) + 1])
    err = assert_fails(checks.test_compute_target, _target("max_pairs", adjacent), "pair_reads")
    assert "out 1 reads features [1, 2]" in err.message


def test_or_pairs_read_reversed_pairs():  # pair j read as features (n - 1 - 2j, n - 2 - 2j): named by the probe
    def reversed_or(x):
        r = x.flip(-1)
        return ((r[..., 0::2] != 0) | (r[..., 1::2] != 0)).to(x.dtype)

    assert_fails(checks.test_compute_target, _target("or_pairs", reversed_or), "pair_reads")


def test_pairs_right_layout_wrong_combination_not_probed():  # layout right: the probe stays silent
    def product(x):
        return x[..., 0::2] * x[..., 1::2]

    err = assert_fails(checks.test_compute_target, _target("max_pairs", product), "max_pairs")
    assert "reads" not in err.message


def test_alignment_rescaled_to_unit_interval():
    def rescaled(W):
        a, lo = ref.basis_alignment(W), 1 / math.sqrt(W.shape[1])
        return torch.where(W.norm(dim=1) > 0, (a - lo) / (1 - lo), 0.0)

    assert_fails(checks.test_basis_alignment, rescaled, "alignment_rescaled")


def test_alignment_other_affine():
    def affine(W):
        return torch.where(W.norm(dim=1) > 0, 0.8 * ref.basis_alignment(W) + 0.1, 0.0)

    assert_fails(checks.test_basis_alignment, affine, "alignment_affine")


def test_correct_variants_still_pass():
    assert_passes(checks.test_generate_features, ref.generate_features)
    assert_passes(checks.test_compute_target, ref.compute_target)
    assert_passes(checks.test_basis_alignment, lambda W: W.abs().amax(1) / W.norm(dim=1).clamp(min=1e-12))
