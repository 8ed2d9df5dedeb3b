"""Proofs for part 4 after the fresh43 measurement: read-backs before a cause is named. A per-feature weight on the
values (`feature_weights`), fewer examples than asked with empty ones still in them (`example_count`), a centred
training set (`train_data_transformed`), a squeeze that drops the examples axis when n_train = 1 (`squeezed`), a
swapped torch.where (`where_swapped`), the square applied before the matmul (`square_before_matmul`) and a random
subsample of j (`nondeterministic`)."""

from __future__ import annotations

import torch

import tests.part4_double_descent as checks
from solutions.part4_double_descent import DoubleDescentModel
from tests.proving import assert_fails


def _gen(shape, p, device):
    return torch.where(torch.rand(shape, device=device) < p, torch.rand(shape, device=device), 0.0)


def test_importance_weights_on_the_values():
    def gen(n_examples, n_inst, n_features, feature_probability, device=None):
        x = _gen((n_examples, n_inst, n_features), feature_probability, device)
        x = x * 0.9 ** torch.arange(n_features, device=device)
        return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)

    failure = assert_fails(checks.test_generate_dataset, gen, "feature_weights")
    assert "geometric" in failure.hint and "0.900**i" in failure.hint


def test_examples_read_as_total_over_instances():
    def gen(n_examples, n_inst, n_features, feature_probability, device=None):
        x = _gen((n_examples // n_inst, n_inst, n_features), feature_probability, device)
        return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)

    failure = assert_fails(checks.test_generate_dataset, gen, "example_count")
    assert "6000 / n_inst (3)" in failure.message and "dropped" not in failure.hint


def test_centred_training_set():
    def gb(self, batch_size=None):
        return self.train_data - self.train_data.mean(0)

    failure = assert_fails(
        checks.test_generate_batch, type("DV", (DoubleDescentModel,), {"generate_batch": gb}), "train_data_transformed"
    )
    assert "centred over the examples" in failure.message


def test_squeeze_zero_on_one_training_example():
    def gb(self, batch_size=None):
        return self.train_data.squeeze(0)

    failure = assert_fails(
        checks.test_generate_batch, type("DV", (DoubleDescentModel,), {"generate_batch": gb}), "squeezed"
    )
    assert "n_train = 1" in failure.message


def _parts(vectors):
    n2 = (vectors**2).sum(-1)
    return n2, vectors / n2.sqrt().clamp_min(1e-12)[..., None]


def test_where_branches_swapped():
    def cd(vectors):
        n2 = (vectors**2).sum(-1)
        den = (vectors @ vectors.mT).pow(2).sum(-1)
        return torch.where(den > 0, torch.zeros_like(n2), n2**2 / den)

    failure = assert_fails(checks.test_compute_dimensionality, cd, "where_swapped")
    assert "swapped" in failure.hint and "normalisation" not in failure.hint


def test_square_before_matmul():
    def cd(vectors):
        n2, unit = _parts(vectors)
        return n2 / (unit @ vectors.mT**2).sum(-1).clamp_min(1e-30)

    assert_fails(checks.test_compute_dimensionality, cd, "square_before_matmul")


def test_random_subsample_of_j():
    def cd(vectors):
        n = vectors.shape[1]
        idx = torch.randperm(n, device=vectors.device)[: max(1, n // 2)]
        n2, unit = _parts(vectors)
        return n2 / ((unit @ vectors[:, idx].mT).pow(2).sum(-1) * n / len(idx)).clamp_min(1e-30)

    failure = assert_fails(checks.test_compute_dimensionality, cd, "nondeterministic")
    assert "random subsample" in failure.hint
