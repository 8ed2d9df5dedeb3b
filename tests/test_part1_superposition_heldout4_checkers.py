"""Proofs for the fresh14 held-out fixes in part 1 (tests/part1_superposition_pairs.py): a pair's mistake named from
its two features' rates (the second feature never masked, masked with ~present, the first = 'pair active'), the
anticorrelated active rate as a function of p (p ** 2 for 2 * p), the combined blocks sized from the wrong count field,
and a batch drawn without its batch axis."""

from __future__ import annotations

import torch

import tests.part1_superposition as p1
from solutions.part1_superposition import CorrelatedToyModel, ToyModel
from tests.proving import assert_fails


def _sub(base, **methods) -> type:
    return type("Variant", (base,), methods)


def corr_second_unmasked(self, n, p):
    present = torch.rand(n, *p.shape) < p
    values = torch.rand(n, p.shape[0], 2 * p.shape[1])
    values[..., 0::2] *= present
    return values


def corr_second_complement(self, n, p):
    present = torch.rand(n, *p.shape) < p
    values = torch.rand(n, p.shape[0], 2 * p.shape[1])
    values[..., 0::2] *= present
    values[..., 1::2] *= ~present
    return values


def _anti(n, p, rule):
    active, coin = torch.rand(n, *p.shape) < rule(p), torch.rand(n, *p.shape) < 0.5
    return active, coin


def anti_first_active(self, n, p):
    active, coin = _anti(n, p, lambda q: 2 * q)
    present = torch.stack([active, active & coin], -1).flatten(-2)
    return torch.where(present, torch.rand(n, p.shape[0], 2 * p.shape[1]), 0.0)


def anti_p_squared(self, n, p):
    active, coin = _anti(n, p, lambda q: q**2)
    present = torch.stack([active & ~coin, active & coin], -1).flatten(-2)
    return torch.where(present, torch.rand(n, p.shape[0], 2 * p.shape[1]), 0.0)


def combined_counts_from_anti(self, n):
    nc = na = self.cfg.n_anticorrelated_pairs
    p = self.feature_probability
    return torch.cat(
        [
            self.generate_correlated_features(n, p[:, 0 : 2 * nc : 2]),
            self.generate_anticorrelated_features(n, p[:, 2 * nc : 2 * (nc + na) : 2]),
            self.generate_uncorrelated_features(n, p[:, 2 * (nc + na) :]),
        ],
        dim=-1,
    )


def batch_no_batch_axis(self, n):
    p = self.feature_probability
    return torch.where(torch.rand(p.shape) < p, torch.rand(p.shape), 0.0)


def test_part1_heldout14_pairs():
    model = _sub(CorrelatedToyModel, generate_correlated_features=corr_second_unmasked)
    err = assert_fails(p1.test_generate_correlated_features, model, "pair_one_unmasked")
    assert "second feature of every pair is always present" in err.hint and "0::2" in err.hint
    model = _sub(CorrelatedToyModel, generate_correlated_features=corr_second_complement)
    err = assert_fails(p1.test_generate_correlated_features, model, "pair_complement")
    assert "~present" in err.hint
    model = _sub(CorrelatedToyModel, generate_anticorrelated_features=anti_first_active)
    err = assert_fails(p1.test_generate_anticorrelated_features, model, "first_is_active")
    assert "2p" in err.message and "first = active & ~coin" in err.hint
    model = _sub(CorrelatedToyModel, generate_anticorrelated_features=anti_p_squared)
    err = assert_fails(p1.test_generate_anticorrelated_features, model, "active_rate_law")
    assert "p ** 2 where 2 * p" in err.hint


def test_part1_heldout14_counts_and_batch_axis():
    model = _sub(CorrelatedToyModel, generate_batch=combined_counts_from_anti)
    err = assert_fails(p1.test_generate_combined_batch, model, "pair_counts")
    assert "5 correlated pairs (expected 2)" in err.message and "s_unc" not in err.hint
    assert "correlated block sized by n_anticorrelated_pairs" in err.hint
    err = assert_fails(p1.test_generate_batch, _sub(ToyModel, generate_batch=batch_no_batch_axis), "no_batch_axis")
    assert "drawn without the batch axis" in err.hint
