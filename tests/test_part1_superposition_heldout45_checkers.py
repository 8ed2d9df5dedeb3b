"""Proofs for part 1 after held-out round 45: values sorted along the batch axis (examples not independent) are named
by the order statistics of a fresh batch (values_ordered_over_batch), in generate_batch and in every block generator;
a presence uniform drawn in bfloat16 is named at small p (small_p_rates); a loss computed inside torch.no_grad() is
named as such (no_grad, hint naming torch.no_grad()). The round's correct variants pass."""

from __future__ import annotations

import torch

import tests.part1_superposition as C
from solutions.part1_superposition import CorrelatedToyModel, ToyModel
from tests.proving import assert_fails, assert_passes


def _gb(fn):
    return type("TV", (ToyModel,), {"generate_batch": fn})


def _corr(name, fn):
    return type("TV", (CorrelatedToyModel,), {name: fn})


# ---------------------------------------------------------------- values sorted along the batch axis
def test_generate_batch_sorted_over_batch_named():
    def generate_batch(self, batch_size):
        s = (batch_size, self.cfg.n_inst, self.cfg.n_features)
        present = torch.rand(s) < self.feature_probability
        return torch.where(present, torch.rand(s).sort(dim=0).values, 0.0)

    err = assert_fails(C.test_generate_batch, _gb(generate_batch), "values_ordered_over_batch")
    assert "rise along the batch axis" in str(err) and "sort" in err.hint


def test_generate_batch_sorted_descending_named():
    def generate_batch(self, batch_size):
        s = (batch_size, self.cfg.n_inst, self.cfg.n_features)
        present = torch.rand(s) < self.feature_probability
        return torch.where(present, torch.rand(s).sort(dim=0, descending=True).values, 0.0)

    err = assert_fails(C.test_generate_batch, _gb(generate_batch), "values_ordered_over_batch")
    assert "fall along the batch axis" in str(err) and "smaller" in err.hint


def test_uncorrelated_sorted_over_batch_named():
    def generate_uncorrelated_features(self, batch_size, p):
        present = torch.rand(batch_size, *p.shape) < p
        return present * torch.rand(batch_size, *p.shape).sort(0).values

    impl = _corr("generate_uncorrelated_features", generate_uncorrelated_features)
    assert_fails(C.test_generate_uncorrelated_features, impl, "values_ordered_over_batch")


def test_correlated_second_value_sorted_named():
    def generate_correlated_features(self, batch_size, p):
        n_inst, n_pairs = p.shape
        present = (torch.rand(batch_size, n_inst, n_pairs) < p).repeat_interleave(2, -1)
        v = torch.rand(batch_size, n_inst, 2 * n_pairs)
        v[..., 1::2] = v[..., 0::2].clone()
        v[..., 1::2] = v[..., 1::2].sort(0).values
        return torch.where(present, v, 0.0)

    impl = _corr("generate_correlated_features", generate_correlated_features)
    assert_fails(C.test_generate_correlated_features, impl, "values_ordered_over_batch")


def test_anticorrelated_sorted_over_batch_named():
    def generate_anticorrelated_features(self, batch_size, p):
        n_inst, n_pairs = p.shape
        u = torch.rand(batch_size, n_inst, n_pairs)
        present = torch.stack([u < p, u > 1 - p], -1).flatten(-2)
        return torch.where(present, torch.rand(batch_size, n_inst, 2 * n_pairs).sort(0).values, 0.0)

    impl = _corr("generate_anticorrelated_features", generate_anticorrelated_features)
    assert_fails(C.test_generate_anticorrelated_features, impl, "values_ordered_over_batch")


# ---------------------------------------------------------------- presence in low precision
def test_generate_batch_bf16_presence_named():
    def generate_batch(self, batch_size):
        s = (batch_size, self.cfg.n_inst, self.cfg.n_features)
        present = torch.rand(s, dtype=torch.bfloat16) < self.feature_probability
        return torch.where(present, torch.rand(s), 0.0)

    err = assert_fails(C.test_generate_batch, _gb(generate_batch), "small_p_rates")
    assert "bfloat16" in err.hint


def test_uncorrelated_half_presence_named():
    def generate_uncorrelated_features(self, batch_size, p):
        present = torch.rand(batch_size, *p.shape, dtype=torch.float16) < p
        return torch.where(present, torch.rand(batch_size, *p.shape), 0.0)

    impl = _corr("generate_uncorrelated_features", generate_uncorrelated_features)
    assert_fails(C.test_generate_uncorrelated_features, impl, "small_p_rates")


# ---------------------------------------------------------------- a loss with no gradient
def test_loss_no_grad_named():
    def calculate_loss(self, out, batch):
        with torch.no_grad():
            w = self.importance * (batch - out) ** 2
        return w.mean(dim=(0, 2)).sum()

    err = assert_fails(C.test_calculate_loss, type("TV", (ToyModel,), {"calculate_loss": calculate_loss}), "no_grad")
    assert "torch.no_grad()" in err.hint and "switched off" in str(err)


def test_loss_detached_named():
    def calculate_loss(self, out, batch):
        return (self.importance * (batch - out.detach()) ** 2).mean(dim=(0, 2)).sum()

    err = assert_fails(C.test_calculate_loss, type("TV", (ToyModel,), {"calculate_loss": calculate_loss}), "no_grad")
    assert ".detach()" in err.hint and "no_grad" not in err.hint


# ---------------------------------------------------------------- the round's correct variants
class FwdGramOK(ToyModel):
    def forward(self, features):
        G = self.W.mT @ self.W
        out = (G @ features.unsqueeze(-1)).squeeze(-1)
        return (out + self.b_final).clamp(min=0)


class LossOK(ToyModel):
    def calculate_loss(self, out, batch):
        return (out - batch).square().mul(self.importance).mean((0, -1)).sum()


class GbOverP(ToyModel):
    def generate_batch(self, batch_size):
        s = (batch_size, self.cfg.n_inst, self.cfg.n_features)
        u = torch.rand(s)
        p = self.feature_probability
        return torch.where(u < p, u / p, 0.0)


class CorrInterleaveOK(CorrelatedToyModel):
    def generate_correlated_features(self, batch_size, p):
        n_inst, n_pairs = p.shape
        u = torch.rand(batch_size, n_inst, n_pairs).repeat_interleave(2, -1)
        return torch.where(u < p.repeat_interleave(2, -1), torch.rand(batch_size, n_inst, 2 * n_pairs), 0.0)


class AntiTopOK(CorrelatedToyModel):
    def generate_anticorrelated_features(self, batch_size, p):
        n_inst, n_pairs = p.shape
        u = torch.rand(batch_size, n_inst, n_pairs)
        present = torch.stack([u < p, u > 1 - p], -1).flatten(-2)
        return torch.where(present, torch.rand(batch_size, n_inst, 2 * n_pairs), 0.0)


class AntiSharedValueOK(CorrelatedToyModel):
    def generate_anticorrelated_features(self, batch_size, p):
        n_inst, n_pairs = p.shape
        active = torch.rand(batch_size, n_inst, n_pairs) < 2 * p
        first = torch.randint(0, 2, (batch_size, n_inst, n_pairs)).bool()
        present = torch.stack([active & first, active & ~first], -1).flatten(-2)
        v = torch.rand(batch_size, n_inst, n_pairs).repeat_interleave(2, -1)
        return torch.where(present, v, 0.0)


class CombToyModelRestOK(CorrelatedToyModel):
    def generate_batch(self, batch_size):
        c, a = self.cfg.n_correlated_pairs, self.cfg.n_anticorrelated_pairs
        p = self.feature_probability
        rest = ToyModel.generate_batch(self, batch_size)[..., 2 * (c + a) :]
        return torch.cat(
            [
                self.generate_correlated_features(batch_size, p[:, 0 : 2 * c : 2]),
                self.generate_anticorrelated_features(batch_size, p[:, 2 * c : 2 * (c + a) : 2]),
                rest,
            ],
            -1,
        )


def test_round_correct_variants_pass():
    assert_passes(C.test_forward, FwdGramOK)
    assert_passes(C.test_calculate_loss, LossOK)
    assert_passes(C.test_generate_batch, GbOverP)
    assert_passes(C.test_generate_correlated_features, CorrInterleaveOK)
    assert_passes(C.test_generate_anticorrelated_features, AntiTopOK)
    assert_passes(C.test_generate_anticorrelated_features, AntiSharedValueOK)
    assert_passes(C.test_generate_combined_batch, CombToyModelRestOK)


def test_reference_passes_the_new_readings():
    for check in (
        C.test_generate_batch,
        C.test_generate_uncorrelated_features,
        C.test_generate_correlated_features,
        C.test_generate_anticorrelated_features,
    ):
        assert_passes(check, CorrelatedToyModel if "features" in check.__name__ else ToyModel)
