"""Proofs for part 1 after held-out round AX (fresh49): WᵀW divided per instance by its trace is read back
(gram_scaled); a b_final clamped at 0 before it is added, invisible at zero input, is read back (bias_edited); one
product reading W with its d_hidden axis reversed is named (hidden_order); a value that is the previous example's
presence uniform is named (values_tied_to_presence). The round's correct variants pass."""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import tests.part1_superposition as C
from solutions.part1_superposition import CorrelatedToyModel, ToyModel
from tests.proving import assert_fails, assert_passes

E = einops.einsum


class FwdGramTrace(ToyModel):
    def forward(self, x):
        G = self.W.mT @ self.W
        G = G / G.diagonal(dim1=-2, dim2=-1).sum(-1)[:, None, None]
        return F.relu((G @ x.unsqueeze(-1)).squeeze(-1) + self.b_final)


class FwdBiasClampNonneg(ToyModel):
    def forward(self, x):
        h = E(x, self.W, "... i f, i d f -> ... i d")
        return F.relu(E(h, self.W, "... i d, i d f -> ... i f") + self.b_final.clamp(min=0))


class FwdWriteFlipped(ToyModel):
    def forward(self, x):
        h = E(x, self.W, "... i f, i d f -> ... i d")
        return F.relu(E(h, self.W.flip(1), "... i d, i d f -> ... i f") + self.b_final)


class FwdLoopOK(ToyModel):
    def forward(self, x):
        outs = [F.relu(x[..., k, :] @ self.W[k].T @ self.W[k] + self.b_final[k]) for k in range(self.cfg.n_inst)]
        return torch.stack(outs, dim=-2)


class GbExtraRowOK(ToyModel):
    def generate_batch(self, B):
        s = (B + 1, self.cfg.n_inst, self.cfg.n_features)
        return torch.where(torch.rand(s) < self.feature_probability, torch.rand(s), 0.0)[1:]


class LossMeanAllOK(ToyModel):
    def calculate_loss(self, out, batch):
        return (self.importance * (batch - out) ** 2).mean() * self.cfg.n_inst


class UncTransposedOK(CorrelatedToyModel):
    def generate_uncorrelated_features(self, B, p):
        u = torch.rand(B, p.shape[1], p.shape[0]).transpose(1, 2)
        return (u < p).float() * torch.rand(p.shape[1], B, p.shape[0]).permute(1, 2, 0)


class UncDoubleInvOK(CorrelatedToyModel):
    def generate_uncorrelated_features(self, B, p):
        s = (B, *p.shape)
        return torch.where(torch.rand(s) > p, 0.0, torch.rand(s))


class CorrBernoulliOK(CorrelatedToyModel):
    def generate_correlated_features(self, B, p):
        m = torch.bernoulli(p.unsqueeze(0).expand(B, -1, -1)).repeat_interleave(2, dim=2)
        return m * torch.empty(B, p.shape[0], 2 * p.shape[1]).uniform_()


class AntiClampOK(CorrelatedToyModel):
    def generate_anticorrelated_features(self, B, p):
        a = torch.rand(B, *p.shape) < (2 * p).clamp(max=1)
        f = torch.randint(0, 2, (B, *p.shape)).bool()
        pr = torch.stack([a & f, a & ~f], -1).flatten(-2)
        return pr * torch.rand(pr.shape)


class CombSplitOK(CorrelatedToyModel):
    def generate_batch(self, B):
        nc, na = self.cfg.n_correlated_pairs, self.cfg.n_anticorrelated_pairs
        pc, pa, pu = torch.tensor_split(self.feature_probability, [2 * nc, 2 * (nc + na)], dim=-1)
        return torch.concat(
            [
                self.generate_correlated_features(B, pc[:, ::2]),
                self.generate_anticorrelated_features(B, pa[:, ::2]),
                self.generate_uncorrelated_features(B, pu),
            ],
            dim=2,
        )


def test_gram_divided_by_trace_read_back():
    err = assert_fails(C.test_forward, FwdGramTrace, "gram_scaled")
    assert "its trace" in err.hint


def test_bias_clamped_read_back():
    err = assert_fails(C.test_forward, FwdBiasClampNonneg, "bias_edited")
    assert "clamp(min=0)" in err.hint and "bias alone is handled right" not in err.hint


def test_hidden_axis_reversed_on_one_product():
    err = assert_fails(C.test_forward, FwdWriteFlipped, "hidden_order")
    assert "W.flip(1)" in err.hint and "the first or the second" in err.hint


def test_round_ax_correct_variants_pass():
    assert_passes(C.test_forward, FwdLoopOK)
    assert_passes(C.test_calculate_loss, LossMeanAllOK)
    assert_passes(C.test_generate_batch, GbExtraRowOK)
    assert_passes(C.test_generate_uncorrelated_features, UncTransposedOK)
    assert_passes(C.test_generate_uncorrelated_features, UncDoubleInvOK)
    assert_passes(C.test_generate_correlated_features, CorrBernoulliOK)
    assert_passes(C.test_generate_anticorrelated_features, AntiClampOK)
    assert_passes(C.test_generate_combined_batch, CombSplitOK)


class GbValsPrevPresenceU(ToyModel):
    def generate_batch(self, B):
        s = (B, self.cfg.n_inst, self.cfg.n_features)
        u = torch.rand(s)
        return torch.where(u < self.feature_probability, u.roll(1, 0), 0.0)


def test_value_is_previous_example_presence_draw():
    err = assert_fails(C.test_generate_batch, GbValsPrevPresenceU, "values_tied_to_presence")
    assert "previous example" in err.hint
