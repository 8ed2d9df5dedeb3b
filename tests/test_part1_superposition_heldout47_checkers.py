"""Proofs for part 1 after held-out round AV: present values with an atom (rand().clamp(min=0.05): 5% of the mass
piled at 0.05, none below) are caught by the most repeated value (values_clamped_min / values_clamped_max /
values_atom); a combined batch whose blocks slice self.importance instead of self.feature_probability is named by the
rates that buffer gives (wrong_buffer), not as wrong slices. The round's correct variants pass."""

from __future__ import annotations

import torch

import tests.part1_superposition as C
from solutions.part1_superposition import CorrelatedToyModel, ToyModel
from tests.proving import assert_fails, assert_passes


def _s(m, b):
    return (b, m.cfg.n_inst, m.cfg.n_features)


# ---------------------------------------------------------------- not caught: an atom of present values
class GbClampVals(ToyModel):
    def generate_batch(self, b):
        s = _s(self, b)
        return torch.where(torch.rand(s) < self.feature_probability, torch.rand(s).clamp(min=0.05), 0.0)


class GbClampMaxVals(ToyModel):
    def generate_batch(self, b):
        s = _s(self, b)
        return torch.where(torch.rand(s) < self.feature_probability, torch.rand(s).clamp(max=0.95), 0.0)


class GbConstantSubstituted(ToyModel):
    def generate_batch(self, b):
        s = _s(self, b)
        v = torch.rand(s)
        v = torch.where(torch.rand(s) < 0.05, torch.full_like(v, 0.5), v)  # some draws replaced by 0.5
        return torch.where(torch.rand(s) < self.feature_probability, v, 0.0)


class GbIndexFillOK(ToyModel):
    def generate_batch(self, b):
        s = _s(self, b)
        present = torch.bernoulli(self.feature_probability.expand(s)).bool()
        out = torch.zeros(s)
        out[present] = torch.rand(int(present.sum()))
        return out


class UncClampVals(CorrelatedToyModel):
    def generate_uncorrelated_features(self, b, p):
        return torch.where(torch.rand(b, *p.shape) < p, torch.rand(b, *p.shape).clamp(min=0.05), 0.0)


def test_values_clamped_min():
    err = assert_fails(C.test_generate_batch, GbClampVals, "values_clamped_min")
    assert "clamp(min=0.05)" in str(err) and "none is below it" in str(err)


def test_values_clamped_max():
    err = assert_fails(C.test_generate_batch, GbClampMaxVals, "values_clamped_max")
    assert "clamp(max=0.95)" in str(err)


def test_values_atom_inside():
    err = assert_fails(C.test_generate_batch, GbConstantSubstituted, "values_atom")
    assert "exactly 0.5" in str(err)


def test_uncorrelated_values_clamped_min():
    assert_fails(C.test_generate_uncorrelated_features, UncClampVals, "values_clamped_min")


def test_generate_batch_correct_variant():
    assert_passes(C.test_generate_batch, GbIndexFillOK)


# ---------------------------------------------------------------- misleading: the wrong buffer as probabilities
class CombImportanceP(CorrelatedToyModel):
    def generate_batch(self, b):
        c, a = self.cfg.n_correlated_pairs, self.cfg.n_anticorrelated_pairs
        p = self.importance  # wrong buffer
        blocks = [
            self.generate_correlated_features(b, p[:, 0 : 2 * c : 2]),
            self.generate_anticorrelated_features(b, p[:, 2 * c : 2 * (c + a) : 2]),
            self.generate_uncorrelated_features(b, p[:, 2 * (c + a) :]),
        ]
        return torch.cat(blocks, -1)


class CombSplitOK(CorrelatedToyModel):
    def generate_batch(self, b):
        c, a = self.cfg.n_correlated_pairs, self.cfg.n_anticorrelated_pairs
        pc, pa, pu = self.feature_probability.split([2 * c, 2 * a, self.cfg.n_uncorrelated], -1)
        return torch.cat(
            [
                self.generate_correlated_features(b, pc[:, ::2]),
                self.generate_anticorrelated_features(b, pa[:, ::2]),
                self.generate_uncorrelated_features(b, pu),
            ],
            -1,
        )


def test_combined_importance_as_probability():
    err = assert_fails(C.test_generate_combined_batch, CombImportanceP, "wrong_buffer")
    assert "self.importance" in str(err)


def test_combined_correct_variant():
    assert_passes(C.test_generate_combined_batch, CombSplitOK)
