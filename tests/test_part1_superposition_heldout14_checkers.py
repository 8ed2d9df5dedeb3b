"""Proofs for part 1 after the fresh37 measurement: values sorted along the feature axis named as an order
(`values_ordered`, in either direction), a value tied to another feature's in a batch without pairs described
without talking about pairs, and values shuffled across features (still independent draws) accepted."""

from __future__ import annotations

import torch

import tests.part1_superposition as p1
from solutions.part1_superposition import ToyModel
from tests.proving import assert_fails, assert_passes


def _toy(**methods):
    return type("Variant", (ToyModel,), methods)


def _shape(self, n):
    return (n, self.cfg.n_inst, self.cfg.n_features)


def _sorted(descending):
    def generate_batch(self, n):
        s = _shape(self, n)
        values = torch.rand(s).sort(-1, descending=descending).values
        return torch.where(torch.rand(s) < self.feature_probability, values, 0.0)

    return generate_batch


def test_values_sorted_along_features():
    for descending, trend in ((True, "decrease"), (False, "increase")):
        err = assert_fails(p1.test_generate_batch, _toy(generate_batch=_sorted(descending)), "values_ordered")
        assert f"present values {trend} along the feature axis" in err.message
        assert "sort" in err.hint and "pair" not in err.hint


def test_tied_value_without_pairs():
    def generate_batch(self, n):  # feature 1's value is the square root of feature 0's: tied, one pair of features
        s = _shape(self, n)
        values = torch.rand(s)
        values[..., 1] = values[..., 0].sqrt()
        return torch.where(torch.rand(s) < self.feature_probability, values, 0.0)

    err = assert_fails(p1.test_generate_batch, _toy(generate_batch=generate_batch), "values_depend_on_cell")
    assert "features 0 and 1" in err.message and "pair" not in err.hint


def test_values_shuffled_across_features_pass():
    def generate_batch(self, n):  # i.i.d. values permuted along the features: still independent U[0, 1] draws
        s = _shape(self, n)
        values = torch.rand(s)[..., torch.randperm(s[-1])]
        return torch.where(torch.rand(s) < self.feature_probability, values, 0.0)

    assert_passes(p1.test_generate_batch, _toy(generate_batch=generate_batch))
