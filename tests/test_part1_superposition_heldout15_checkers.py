"""Proofs for part 1 after the fresh38 measurement: a pair layout that coincides with the right one only for 1 or 2
pairs (cat then the inverse rearrange) caught by a 5-pair call, correct pair layouts still accepted there."""

from __future__ import annotations

import einops
import torch

import tests.part1_superposition as p1
from solutions.part1_superposition import CorrelatedToyModel, ToyModel
from tests.proving import assert_fails, assert_passes


def _cv(**methods):
    return type("CV", (CorrelatedToyModel,), methods)


def test_anticorrelated_cat_then_inverse_rearrange_is_named():
    def gen(self, n, p):
        k, m = p.shape
        act, c = torch.rand(n, k, m) < 2 * p, torch.rand(n, k, m) < 0.5
        pr = einops.rearrange(torch.cat([act & c, act & ~c], -1), "b k (m two) -> b k (two m)", two=2)
        return torch.where(pr, torch.rand(n, k, 2 * m), 0.0)

    err = assert_fails(
        p1.test_generate_anticorrelated_features, _cv(generate_anticorrelated_features=gen), "pair_layout"
    )
    assert "inverse permutation" in err.hint and "5 pairs" in err.message


def test_correlated_cat_then_inverse_rearrange_is_named():
    def gen(self, n, p):
        k, m = p.shape
        pr = torch.rand(n, k, m) < p
        pr = einops.rearrange(torch.cat([pr, pr], -1), "b k (m two) -> b k (two m)", two=2)
        return torch.where(pr, torch.rand(n, k, 2 * m), 0.0)

    assert_fails(p1.test_generate_correlated_features, _cv(generate_correlated_features=gen), "pair_layout")


def test_anticorrelated_cat_then_right_rearrange_passes():
    def gen(self, n, p):
        k, m = p.shape
        act, c = torch.rand(n, k, m) < 2 * p, torch.rand(n, k, m) < 0.5
        pr = einops.rearrange(torch.cat([act & c, act & ~c], -1), "b k (two m) -> b k (m two)", two=2)
        return torch.where(pr, torch.rand(n, k, 2 * m), 0.0)

    assert_passes(p1.test_generate_anticorrelated_features, _cv(generate_anticorrelated_features=gen))


def test_correlated_repeat_interleave_on_instance_axis_names_that_axis():
    def gen(self, n, p):
        k, m = p.shape
        pr = (torch.rand(n, k, m) < p).repeat_interleave(2, dim=1).reshape(n, k, 2 * m)
        return torch.where(pr, torch.rand(n, k, 2 * m), 0.0)

    err = assert_fails(p1.test_generate_correlated_features, _cv(generate_correlated_features=gen), "pair_layout")
    assert "repeat_interleave over another axis" in err.hint


def test_uncorrelated_values_shifted_by_p_are_named():
    def gen(self, n, p):
        s = (n, *p.shape)
        return torch.where(torch.rand(s) < p, torch.rand(s) * (1 - p) + p, 0.0)

    err = assert_fails(
        p1.test_generate_uncorrelated_features, _cv(generate_uncorrelated_features=gen), "values_shifted_by_p"
    )
    assert "[p, 1]" in err.hint and "correlate" not in err.message


def test_uncorrelated_values_scaled_by_one_minus_p_are_named():
    def gen(self, n, p):
        s = (n, *p.shape)
        return torch.where(torch.rand(s) < p, torch.rand(s) * (1 - p), 0.0)

    assert_fails(
        p1.test_generate_uncorrelated_features, _cv(generate_uncorrelated_features=gen), "values_scaled_by_1_minus_p"
    )


def test_forward_gram_columns_reversed_is_named():
    def forward(self, x):
        G = torch.einsum("kdf,kdg->kfg", self.W, self.W)
        return torch.relu(torch.einsum("...kf,kfg->...kg", x, G.mT.flip(-1)) + self.b_final)

    err = assert_fails(p1.test_forward, type("TV", (ToyModel,), {"forward": forward}), "gram_edit")
    assert "columns reversed" in err.hint
