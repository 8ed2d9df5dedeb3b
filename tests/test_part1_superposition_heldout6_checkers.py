"""Proofs for the causes named by part 1's draw statistics: presence from another law than rand() < p (|randn| < p,
Poisson(p) > 0), a probability table laid out along the batch axis, an anticorrelated coin that is constant, values
divided by the number of present features, and a pair's probability taken as the product of its two features' p."""

from __future__ import annotations

import torch

import tests.part1_superposition as p1
from solutions.part1_superposition import CorrelatedToyModel, ToyModel
from tests.proving import assert_fails


def _sub(base, **methods) -> type:
    return type("Variant", (base,), methods)


def _shape(self, n):
    return (n, self.cfg.n_inst, self.cfg.n_features)


def batch_abs_randn(self, n):
    return torch.where(torch.randn(_shape(self, n)).abs() < self.feature_probability, torch.rand(_shape(self, n)), 0.0)


def batch_poisson(self, n):
    present = torch.poisson(self.feature_probability.expand(_shape(self, n))) > 0
    return torch.where(present, torch.rand(_shape(self, n)), 0.0)


def corr_flat_interleave(self, n, p):
    k, m = p.shape
    present = (torch.rand(n * k * m) < p.flatten().repeat_interleave(n)).view(n, k, m)
    return torch.where(present.repeat_interleave(2, -1), torch.rand(n, k, 2 * m), 0.0)


def anti_randint_coin(self, n, p):
    k, m = p.shape
    active, coin = torch.rand(n, k, m) < 2 * p, torch.randint(0, 1, (n, k, m)).bool()
    present = torch.stack([active & coin, active & ~coin], -1).flatten(-2)
    return torch.where(present, torch.rand(n, k, 2 * m), 0.0)


def anti_coin_per_pair(self, n, p):  # one coin per (inst, pair), shared by the batch
    k, m = p.shape
    active, coin = torch.rand(n, k, m) < 2 * p, (torch.arange(k * m).view(k, m) % 2).bool()
    present = torch.stack([active & coin, active & ~coin], -1).flatten(-2)
    return torch.where(present, torch.rand(n, k, 2 * m), 0.0)


def anti_coin_per_call(self, n, p):  # one Python coin per call
    k, m = p.shape
    active, coin = torch.rand(n, k, m) < 2 * p, bool(torch.rand(()) < 0.5)
    present = torch.stack([active & coin, active & (not coin)], -1).flatten(-2)
    return torch.where(present, torch.rand(n, k, 2 * m), 0.0)


def unc_count_normalised(self, n, p):
    present = torch.rand(n, *p.shape) < p
    x = torch.where(present, torch.rand(n, *p.shape), 0.0)
    return x / present.sum(-1, keepdim=True).clamp(min=1)


def combined_product(self, n):
    nc, na = self.cfg.n_correlated_pairs, self.cfg.n_anticorrelated_pairs
    p, sa, su = self.feature_probability, 2 * nc, 2 * (nc + na)
    return torch.cat(
        [
            self.generate_correlated_features(n, p[:, 0:sa:2] * p[:, 1:sa:2]),
            self.generate_anticorrelated_features(n, p[:, sa:su:2] * p[:, sa + 1 : su : 2]),
            self.generate_uncorrelated_features(n, p[:, su:]),
        ],
        dim=-1,
    )


def test_part1_presence_laws_and_batch_layout():
    err = assert_fails(p1.test_generate_batch, _sub(ToyModel, generate_batch=batch_abs_randn), "presence_law")
    assert "erf(p/√2)" in err.hint and "|randn| < p" in err.hint
    err = assert_fails(p1.test_generate_batch, _sub(ToyModel, generate_batch=batch_poisson), "presence_law")
    assert "Poisson(p) > 0" in err.hint
    model = _sub(CorrelatedToyModel, generate_correlated_features=corr_flat_interleave)
    err = assert_fails(p1.test_generate_correlated_features, model, "batch_layout")
    assert "mean probability" not in err.hint and "repeat_interleave(n)" in err.hint


def test_part1_anticorrelated_choice_constant_or_shared():
    model = _sub(CorrelatedToyModel, generate_anticorrelated_features=anti_randint_coin)
    err = assert_fails(p1.test_generate_anticorrelated_features, model, "choice_constant")
    assert "randint(0, 1" in err.hint and "whole batch" not in err.hint
    model = _sub(CorrelatedToyModel, generate_anticorrelated_features=anti_coin_per_pair)
    err = assert_fails(p1.test_generate_anticorrelated_features, model, "choice_shared_over_batch")
    assert "once for the whole batch" in err.hint
    model = _sub(CorrelatedToyModel, generate_anticorrelated_features=anti_coin_per_call)
    err = assert_fails(p1.test_generate_anticorrelated_features, model, "choice_shared_over_batch")
    assert "one draw per call" in err.hint


def test_part1_values_per_count_and_pair_product():
    model = _sub(CorrelatedToyModel, generate_uncorrelated_features=unc_count_normalised)
    err = assert_fails(p1.test_generate_uncorrelated_features, model, "values_per_present_count")
    assert "present.sum(-1)" in err.hint
    model = _sub(CorrelatedToyModel, generate_batch=combined_product)
    err = assert_fails(p1.test_generate_combined_batch, model, "presence_probability")
    assert "product p[2j] · p[2j + 1]" in err.hint
