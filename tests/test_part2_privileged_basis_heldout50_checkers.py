"""Proofs for part 2 after held-out round AW (fresh48): a weight transform that gives the same output in either
product (a positive per-neuron scale passes the ReLU) names both places; a {0, 1} sign is named beside the zeroed
negative half (same law); b_final added again after the output ReLU is read back on zeros; a loss whose output is
clipped (out.clamp(max=1)) is named. The round's correct variants pass."""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import tests.part2_privileged_basis as C
from solutions.part2_privileged_basis import NeuronComputationModel, NeuronModel
from tests.proving import assert_fails, assert_passes

E = einops.einsum


class NfUpNormalised(NeuronModel):
    def forward(self, x):
        h = F.relu(E(x, self.W, "... i f, i d f -> ... i d"))
        Wn = F.normalize(self.W, dim=-1)
        return F.relu(E(h, Wn, "... i d, i d f -> ... i f") + self.b_final)


class NfThresholdOK(NeuronModel):
    def forward(self, x):
        h = F.threshold(torch.einsum("...if,idf->...id", x, self.W), 0.0, 0.0)
        return F.threshold(torch.einsum("...id,idf->...if", h, self.W) + self.b_final, 0.0, 0.0)


class CfBiasTwice(NeuronComputationModel):
    def forward(self, x):
        h = F.relu(E(x, self.W1, "... i f, i d f -> ... i d"))
        return F.relu(E(h, self.W2, "... i d, i f d -> ... i f") + self.b_final) + self.b_final


class CfRearrangeOK(NeuronComputationModel):
    def forward(self, x):
        W2t = einops.rearrange(self.W2, "i f d -> i d f")
        h = (x.unsqueeze(-2) @ self.W1.mT).relu()
        return ((h @ W2t).squeeze(-2) + self.b_final).relu()


class CgbSignRandint(NeuronComputationModel):
    def generate_batch(self, b):
        s = (b, self.cfg.n_inst, self.cfg.n_features)
        sign = torch.randint(0, 2, s)
        return torch.where(torch.rand(s) < self.feature_probability, sign * torch.rand(s), 0.0)


class CgbSignRandnOK(NeuronComputationModel):
    def generate_batch(self, b):
        s = (b, self.cfg.n_inst, self.cfg.n_features)
        v = torch.sign(torch.randn(s)) * torch.rand(s)
        return v * (torch.rand(s) < self.feature_probability)


class ClOutClamped(NeuronComputationModel):
    def calculate_loss(self, out, batch):
        return (self.importance * (batch.abs() - out.clamp(max=1)) ** 2).mean((0, 2)).sum()


class ClOutClamped01(NeuronComputationModel):
    def calculate_loss(self, out, batch):
        return (self.importance * (batch.abs() - out.clamp(0, 1)) ** 2).mean((0, 2)).sum()


class ClMaximumOK(NeuronComputationModel):
    def calculate_loss(self, out, batch):
        tgt = torch.maximum(batch, -batch)
        return einops.reduce(self.importance * (out - tgt).pow(2), "b i f -> i", "mean").sum()


def test_normalised_rows_either_product():
    err = assert_fails(C.test_neuron_forward, NfUpNormalised, "weight_transform")
    assert "or the second" in err.hint and "normalised along `feats`" in err.hint


def test_zero_one_sign_named_beside_relu():
    err = assert_fails(C.test_computation_generate_batch, CgbSignRandint, "negatives_zeroed")
    assert "{0, 1}" in err.hint and "randint(0, 2)" in err.hint


def test_bias_added_after_relu_read_back():
    err = assert_fails(C.test_computation_forward, CfBiasTwice, "bias_term")
    assert "added again after the output ReLU" in err.hint and "no cause is named" not in err.hint


def test_output_clipped_in_loss():
    err = assert_fails(C.test_computation_calculate_loss, ClOutClamped, "out_clipped")
    assert "out.clamp(max=1)" in err.hint
    err = assert_fails(C.test_computation_calculate_loss, ClOutClamped01, "out_clipped")
    assert "out.clamp(0, 1)" in err.hint


def test_round_aw_correct_variants_pass():
    assert_passes(C.test_neuron_forward, NfThresholdOK)
    assert_passes(C.test_computation_forward, CfRearrangeOK)
    assert_passes(C.test_computation_generate_batch, CgbSignRandnOK)
    assert_passes(C.test_computation_calculate_loss, ClMaximumOK)
