"""Proofs for part 1 after held-out round AW (fresh48): an activation einsum'd in a transposed layout and reshaped
back (reshape_transpose), one triangle of WᵀW (gram_edit), the error clamped in the loss (error_clipped), present
values that never go below 0.01 (values_support_gap: a spacing no U[0, 1] sample leaves), and a clamp_ on
self.feature_probability (modified_buffer, read back as the clamp) are named. The round's correct variants pass."""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import tests.part1_superposition as C
from solutions.part1_superposition import CorrelatedToyModel, ToyModel
from tests.proving import assert_fails, assert_passes

E = einops.einsum


class FwdOutReshape(ToyModel):
    def forward(self, x):
        h = E(x, self.W, "... i f, i d f -> ... i d")
        o = E(h, self.W, "... i d, i d f -> ... f i")
        o = o.reshape(*o.shape[:-2], self.cfg.n_inst, self.cfg.n_features)
        return F.relu(o + self.b_final)


class FwdHiddenReshape(ToyModel):
    def forward(self, x):
        h = E(x, self.W, "... i f, i d f -> ... d i")
        h = h.reshape(*h.shape[:-2], self.cfg.n_inst, self.cfg.d_hidden)
        return F.relu(E(h, self.W, "... i d, i d f -> ... i f") + self.b_final)


class FwdGramTriu(ToyModel):
    def forward(self, x):
        G = torch.triu(self.W.mT @ self.W)
        o = (G @ x.unsqueeze(-1)).squeeze(-1)
        return F.relu(o + self.b_final)


class FwdGramTrilRowVec(ToyModel):
    def forward(self, x):
        G = torch.tril(self.W.mT @ self.W)
        return F.relu((x.unsqueeze(-2) @ G).squeeze(-2) + self.b_final)


class FwdRowVecOK(ToyModel):
    def forward(self, x):
        o = (x.unsqueeze(-2) @ self.W.mT @ self.W).squeeze(-2)
        return torch.maximum(o + self.b_final, torch.zeros_like(o))


class LossClampErr(ToyModel):
    def calculate_loss(self, out, batch):
        return (self.importance * (batch - out).clamp(-1, 1) ** 2).mean((0, 2)).sum()


class LossOutClamped(ToyModel):
    def calculate_loss(self, out, batch):
        return (self.importance * (batch - out.clamp(max=1)) ** 2).mean((0, 2)).sum()


class LossEinsumOK(ToyModel):
    def calculate_loss(self, out, batch):
        B, _, n = batch.shape
        return (torch.einsum("bif,if->i", (out - batch).square(), self.importance) / (B * n)).sum()


class GbFloor(ToyModel):
    def generate_batch(self, b):
        s = (b, self.cfg.n_inst, self.cfg.n_features)
        present = torch.rand(s) < self.feature_probability
        return torch.where(present, 0.01 + 0.99 * torch.rand(s), 0.0)


class GbClampInplace(ToyModel):
    def generate_batch(self, b):
        p = self.feature_probability.clamp_(min=0.01)
        s = (b, self.cfg.n_inst, self.cfg.n_features)
        return torch.where(torch.rand(s) < p, torch.rand(s), 0.0)


class GbBetaOK(ToyModel):
    def generate_batch(self, b):
        s = (b, self.cfg.n_inst, self.cfg.n_features)
        mask = torch.bernoulli(self.feature_probability.expand(s)).bool()
        v = torch.distributions.Beta(torch.tensor(1.0), torch.tensor(1.0)).sample(s)
        return v * mask


class CorrUOverPOK(CorrelatedToyModel):
    def generate_correlated_features(self, b, p):
        i, n = p.shape
        u = torch.rand(b, i, n)
        present = u < p
        first = torch.where(present, u / p.clamp_min(1e-30), 0.0)
        second = torch.where(present, torch.rand(b, i, n), 0.0)
        return torch.stack([first, second], -1).flatten(-2)


class AntiGeHalfOK(CorrelatedToyModel):
    def generate_anticorrelated_features(self, b, p):
        i, n = p.shape
        active = torch.rand(b, i, n).mul(0.5) < p
        second = torch.rand(b, i, n) >= 0.5
        present = torch.stack([active & ~second, active & second], -1).reshape(b, i, 2 * n)
        return present * torch.rand(b, i, 2 * n)


class CombIndexOK(CorrelatedToyModel):
    def generate_batch(self, b):
        c, a = self.cfg.n_correlated_pairs, self.cfg.n_anticorrelated_pairs
        p = self.feature_probability
        idx = torch.arange(self.cfg.n_features, device=p.device)
        pc = p.index_select(1, idx[: 2 * c][::2]) if c else p[:, :0]
        pa = p.index_select(1, idx[2 * c : 2 * (c + a)][::2]) if a else p[:, :0]
        pu = p.index_select(1, idx[2 * (c + a) :])
        return torch.cat(
            [
                self.generate_correlated_features(b, pc),
                self.generate_anticorrelated_features(b, pa),
                self.generate_uncorrelated_features(b, pu),
            ],
            -1,
        )


def test_layout_reshaped_not_transposed():
    err = assert_fails(C.test_forward, FwdOutReshape, "reshape_transpose")
    assert "the output" in err.hint and ".reshape" in err.hint
    err = assert_fails(C.test_forward, FwdHiddenReshape, "reshape_transpose")
    assert "the hidden vector" in err.hint


def test_gram_triangle():
    for impl in (FwdGramTriu, FwdGramTrilRowVec):
        err = assert_fails(C.test_forward, impl, "gram_edit")
        assert "one triangle" in err.hint


def test_loss_clipped():
    err = assert_fails(C.test_calculate_loss, LossClampErr, "error_clipped")
    assert ".clamp(-1, 1)" in err.hint
    err = assert_fails(C.test_calculate_loss, LossOutClamped, "out_clipped")
    assert "out.clamp(max=1)" in err.hint


def test_values_support_gap():
    err = assert_fails(C.test_generate_batch, GbFloor, "values_support_gap")
    assert "start at 0.01" in err.hint


def test_buffer_clamped_in_place():
    err = assert_fails(C.test_generate_batch, GbClampInplace, "modified_buffer")
    assert "clamp_(min=0.01)" in err.message


def test_round_aw_correct_variants_pass():
    assert_passes(C.test_forward, FwdRowVecOK)
    assert_passes(C.test_calculate_loss, LossEinsumOK)
    assert_passes(C.test_generate_batch, GbBetaOK)
    assert_passes(C.test_generate_correlated_features, CorrUOverPOK)
    assert_passes(C.test_generate_anticorrelated_features, AntiGeHalfOK)
    assert_passes(C.test_generate_combined_batch, CombIndexOK)
