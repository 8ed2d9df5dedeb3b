"""Proofs for part 1's fresh19 held-out fixes: a pair index off by one ((arange(2n) ± 1) // 2, clamped or wrapped, or
a roll by one feature) named from which features share a presence draw, apart from a reshape that mixes the inst and
pair axes (still named as such); values rescaled so the largest is 1 named from small batches (a value of exactly 1
in every call), while a correct 1 - torch.rand passes."""

from __future__ import annotations

import torch

import tests.part1_superposition as p1
from solutions.part1_superposition import CorrelatedToyModel
from tests.proving import assert_fails, assert_passes


def _sub(**methods) -> type:
    return type("Variant", (CorrelatedToyModel,), methods)


def _indexed(idx_of):
    def generate(self, n, p):
        k, m = p.shape
        present = torch.rand(n, k, m) < p
        return torch.where(present[..., idx_of(m)], torch.rand(n, k, 2 * m), 0.0)

    return generate


late_clamped = _indexed(lambda m: ((torch.arange(2 * m) + 1) // 2).clamp(max=m - 1))
early_wrapped = _indexed(lambda m: (torch.arange(2 * m) - 1).div(2, rounding_mode="floor") % m)


def corr_roll(self, n, p):
    present = (torch.rand(n, *p.shape) < p).repeat_interleave(2, dim=-1).roll(1, dims=-1)
    return torch.where(present, torch.rand(present.shape), 0.0)


def corr_stack_reshape(self, n, p):
    k, m = p.shape
    present = torch.rand(n, k, m) < p
    present = torch.stack([present, present], dim=1).reshape(n, k, 2 * m)
    return torch.where(present, torch.rand(n, k, 2 * m), 0.0)


def unc_batch_max(self, n, p):
    x = torch.where(torch.rand(n, *p.shape) < p, torch.rand(n, *p.shape), 0.0)
    return x / x.max()


def unc_feature_max(self, n, p):
    x = torch.where(torch.rand(n, *p.shape) < p, torch.rand(n, *p.shape), 0.0)
    return x / x.amax(0, keepdim=True).clamp_min(1e-12)


def corr_batch_max(self, n, p):
    present = (torch.rand(n, *p.shape) < p).repeat_interleave(2, dim=-1)
    x = torch.where(present, torch.rand(present.shape), 0.0)
    return x / x.max()


def unc_one_minus_rand(self, n, p):  # correct: values in (0, 1]
    return torch.where(torch.rand(n, *p.shape) < p, 1 - torch.rand(n, *p.shape), 0.0)


def test_pair_index_off_by_one_named():
    check = p1.test_generate_correlated_features
    for generate in (late_clamped, early_wrapped, corr_roll):
        err = assert_fails(check, _sub(generate_correlated_features=generate), "pair_index_offset")
        assert "off by one" in err.hint and "reshape" not in err.hint and "share one draw" in err.message
    err = assert_fails(check, _sub(generate_correlated_features=corr_stack_reshape), "pair_layout")
    assert "not a pair" in err.message and "reshape" in err.hint and "across instances" in err.hint


def test_values_rescaled_to_max_named():
    err = assert_fails(
        p1.test_generate_uncorrelated_features, _sub(generate_uncorrelated_features=unc_batch_max), "values_max_scaled"
    )
    assert "exactly 1.0" in err.message and "x.max()" in err.hint
    assert_fails(
        p1.test_generate_uncorrelated_features,
        _sub(generate_uncorrelated_features=unc_feature_max),
        "values_max_scaled",
    )
    assert_fails(
        p1.test_generate_correlated_features, _sub(generate_correlated_features=corr_batch_max), "values_max_scaled"
    )
    assert_passes(p1.test_generate_uncorrelated_features, _sub(generate_uncorrelated_features=unc_one_minus_rand))
