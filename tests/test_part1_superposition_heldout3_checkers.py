"""Proofs for the fresh10 held-out fixes in part 1: |z| as the output nonlinearity, p laid out along the batch,
anticorrelated activity at the features' mean rate; fresh11: a fixed count of present features per example, the
which-one coin of an anticorrelated pair at p / 2 * p, and correlated pairs clamped at p = 1/2."""

from __future__ import annotations

import einops
import torch

import tests.part1_superposition as p1
from solutions.part1_superposition import CorrelatedToyModel, ToyModel
from tests.proving import assert_fails


def _sub(base, **methods) -> type:
    return type("Variant", (base,), methods)


def forward_abs(self, features):
    h = einops.einsum(features, self.W, "... i f, i d f -> ... i d")
    out = einops.einsum(h, self.W, "... i d, i d f -> ... i f") + self.b_final
    return out.abs()


def uncorrelated_interleaved(self, n, p):
    k, m = p.shape
    probs = p.repeat_interleave(n, 0).view(n, k, m)
    return torch.where(torch.rand(n, k, m) < probs, torch.rand(n, k, m), 0.0)


def anti_pmean(self, n, p):
    k, m = p.shape
    active = torch.rand(n, k, m) < 2 * p.mean(-1, keepdim=True)
    first = torch.rand(n, k, m) < 0.5
    present = torch.stack([active & first, active & ~first], -1).flatten(-2)
    return torch.where(present, torch.rand(n, k, 2 * m), 0.0)


def test_part1_heldout10():
    err = assert_fails(p1.test_forward, _sub(ToyModel, forward=forward_abs), "negative_not_zeroed")
    assert "abs" in err.hint
    model = _sub(CorrelatedToyModel, generate_uncorrelated_features=uncorrelated_interleaved)
    assert_fails(p1.test_generate_uncorrelated_features, model, "batch_layout")
    model = _sub(CorrelatedToyModel, generate_anticorrelated_features=anti_pmean)
    assert_fails(p1.test_generate_anticorrelated_features, model, "feature_mean_probability")


def batch_exact_k(self, n):
    p = self.feature_probability
    kk = (p * p.shape[-1]).round().mean(-1).round().long()
    ranks = torch.rand(n, *p.shape).argsort(-1).argsort(-1)
    return torch.where(ranks < kk[None, :, None], torch.rand(n, *p.shape), 0.0)


def test_part1_heldout11_fixed_count():
    err = assert_fails(p1.test_generate_batch, _sub(ToyModel, generate_batch=batch_exact_k), "fixed_count")
    assert "exactly 2 of the 4 features" in err.message and "fair coin" not in err.hint


def anti_choice_precedence(self, n, p):
    k, m = p.shape
    active = torch.rand(n, k, m) < 2 * p
    first = torch.rand(n, k, m) < p / 2 * p
    present = torch.stack([active & first, active & ~first], -1).flatten(-2)
    return torch.where(present, torch.rand(n, k, 2 * m), 0.0)


def test_part1_heldout11_choice_split():
    model = _sub(CorrelatedToyModel, generate_anticorrelated_features=anti_choice_precedence)
    err = assert_fails(p1.test_generate_anticorrelated_features, model, "presence_probability")
    assert "share of its active examples" in err.hint and "its own probability" not in err.hint


def correlated_clamped(self, n, p):
    k, m = p.shape
    present = (torch.rand(n, k, m) < p.clamp(max=0.5)).repeat_interleave(2, -1)
    return torch.where(present, torch.rand(n, k, 2 * m), 0.0)


def test_part1_heldout11_correlated_clamp():
    model = _sub(CorrelatedToyModel, generate_correlated_features=correlated_clamped)
    err = assert_fails(p1.test_generate_correlated_features, model, "presence_clamped")
    assert "p = 0.8" in err.message
