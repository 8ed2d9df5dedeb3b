"""Proofs for the fresh16 held-out fixes in part 1: pairs written overlapping at stride 1 (a feature never written
stays 0), the anticorrelated coin drawn per feature, p read per feature (p[:, ::2], half the pairs), an uncorrelated
block with a pair generator's layout (2n features), values divided by p, and an output ReLU capped at 6."""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import tests.part1_superposition as p1
from solutions.part1_superposition import CorrelatedToyModel, ToyModel
from tests.proving import assert_fails


def _sub(base, **methods) -> type:
    return type("Variant", (base,), methods)


def corr_loop_overlap(self, n, p):
    n_inst, n_pairs = p.shape
    out = torch.zeros(n, n_inst, 2 * n_pairs)
    for j in range(n_pairs):
        present = (torch.rand(n, n_inst) < p[:, j]).unsqueeze(-1)
        out[..., j : j + 2] = present * torch.rand(n, n_inst, 2)
    return out


def corr_last_unwritten(self, n, p):
    present = (torch.rand(n, *p.shape) < p).repeat_interleave(2, -1)
    out = torch.where(present, torch.rand(n, p.shape[0], 2 * p.shape[1]), 0.0)
    out[..., -1] = 0  # a loop that stops one feature short
    return out


def anti_coin_per_feature(self, n, p):
    active = (torch.rand(n, *p.shape) < 2 * p).repeat_interleave(2, -1)
    coin = torch.rand(n, p.shape[0], 2 * p.shape[1]) < 0.5
    return torch.where(active & coin, torch.rand(n, p.shape[0], 2 * p.shape[1]), 0.0)


def anti_p_subsampled(self, n, p):
    p = p[:, ::2]
    active, first = torch.rand(n, *p.shape) < 2 * p, torch.rand(n, *p.shape) < 0.5
    present = torch.stack([active & first, active & ~first], -1).flatten(-2)
    return torch.where(present, torch.rand(n, p.shape[0], 2 * p.shape[1]), 0.0)


def unc_correlated_body(self, n, p):
    present = (torch.rand(n, *p.shape) < p).repeat_interleave(2, -1)
    return torch.where(present, torch.rand(n, p.shape[0], 2 * p.shape[1]), 0.0)


def batch_divided_by_p(self, n):
    shape = (n, self.cfg.n_inst, self.cfg.n_features)
    return torch.where(torch.rand(shape) < self.feature_probability, torch.rand(shape), 0.0) / self.feature_probability


def forward_relu6(self, x):
    h = einops.einsum(x, self.W, "... i f, i d f -> ... i d")
    return F.relu6(einops.einsum(h, self.W, "... i d, i d f -> ... i f") + self.b_final)


def test_part1_fresh16_pair_generators():
    model = _sub(CorrelatedToyModel, generate_correlated_features=corr_loop_overlap)
    err = assert_fails(p1.test_generate_correlated_features, model, "pairs_overlapping")
    assert "never present" in err.message and "out[..., 2 * j:2 * j + 2]" in err.hint
    model = _sub(CorrelatedToyModel, generate_correlated_features=corr_last_unwritten)
    err = assert_fails(p1.test_generate_correlated_features, model, "unwritten_features")
    assert "possible causes" in err.hint
    model = _sub(CorrelatedToyModel, generate_anticorrelated_features=anti_coin_per_feature)
    err = assert_fails(p1.test_generate_anticorrelated_features, model, "coin_per_feature")
    assert "drawn per feature" in err.hint
    model = _sub(CorrelatedToyModel, generate_anticorrelated_features=anti_p_subsampled)
    err = assert_fails(p1.test_generate_anticorrelated_features, model, "pairs_subsampled")
    assert "never on together" in err.message and "p[:, ::2]" in err.hint
    model = _sub(CorrelatedToyModel, generate_uncorrelated_features=unc_correlated_body)
    err = assert_fails(p1.test_generate_uncorrelated_features, model, "uncorrelated_pair_layout")
    assert "always on together" in err.message and "pair generator's layout" in err.hint


def test_part1_fresh16_batch_and_forward():
    err = assert_fails(
        p1.test_generate_batch, _sub(ToyModel, generate_batch=batch_divided_by_p), "values_scaled_by_table"
    )
    assert "divided by p" in err.hint
    err = assert_fails(p1.test_forward, _sub(ToyModel, forward=forward_relu6), "output_capped")
    assert "clipped at 6" in err.hint and "relu6" in err.hint
