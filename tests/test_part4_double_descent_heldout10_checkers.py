"""Proofs for part 4 after the fresh41 measurement: generate_dataset dropping the examples with no feature present
(`dropped_empty`), generate_batch appending a fresh batch to the training set (`extra_examples`), compute_dimensionality
with a one-side-unit Gram matrix (`gram_one_side_unit`), the vectors centred first (`centred`), and a floor of 1e-6
on the denominator (`small_vector`, with the floor read back)."""

from __future__ import annotations

import torch

import tests.part4_double_descent as checks
from solutions.part1_superposition import ToyModel
from solutions.part4_double_descent import DoubleDescentModel
from tests.proving import assert_fails


def _normalised(x):
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def test_empty_examples_dropped():
    def generate_dataset(n, k, f, p, device=None):
        s = (n, k, f)
        x = torch.where(torch.rand(s, device=device) < p, torch.rand(s, device=device), 0.0)
        return _normalised(x[(x.sum(-1) > 0).all(-1)])

    failure = assert_fails(checks.test_generate_dataset, generate_dataset, "dropped_empty")
    assert "no active feature were dropped" in failure.hint and "kept" in failure.hint


def test_fresh_batch_appended():
    def gb(self, batch_size=None):
        return torch.cat([self.train_data, ToyModel.generate_batch(self, batch_size or 16)])

    failure = assert_fails(
        checks.test_generate_batch, type("DV", (DoubleDescentModel,), {"generate_batch": gb}), "extra_examples"
    )
    assert "16 = batch_size" in failure.message


def _dims(v, den):
    return (v**2).sum(-1) / den


def test_gram_one_side_unit():
    def compute_dimensionality(v):
        n2 = (v**2).sum(-1)
        u = v / n2.sqrt().clamp_min(1e-12)[..., None]
        gram = torch.einsum("kjd,kje->kde", u, v)
        return n2 / torch.einsum("kid,kde,kie->ki", u, gram, u).clamp_min(1e-30)

    assert_fails(checks.test_compute_dimensionality, compute_dimensionality, "gram_one_side_unit")


def test_centred_first():
    def compute_dimensionality(v):
        v = v - v.mean(1, keepdim=True)
        u = v / v.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return _dims(v, (u @ v.mT).pow(2).sum(-1).clamp_min(1e-30))

    assert_fails(checks.test_compute_dimensionality, compute_dimensionality, "centred")


def test_denominator_floor_named():
    def compute_dimensionality(v):
        u = v / v.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return _dims(v, (u @ v.mT).pow(2).sum(-1).clamp_min(1e-6))

    failure = assert_fails(checks.test_compute_dimensionality, compute_dimensionality, "small_vector")
    assert "‖v‖² / D = 1e-06" in failure.message
