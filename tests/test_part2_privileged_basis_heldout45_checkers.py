"""Proofs for part 2 after held-out round AT: generate_batch's value-law failures split into sign and magnitude (a
sign coin drawn against p: sign_coin_biased; presence decided by thresholding the value's magnitude:
magnitude_decides_presence), a smoothed |x| target in calculate_loss (target_smoothed_abs), and the round's correct
variants."""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import tests.part2_privileged_basis as C
from solutions.part1_superposition import ToyModel
from solutions.part2_privileged_basis import NeuronComputationModel, NeuronModel
from tests.proving import assert_fails, assert_passes


def _shape(m, n):
    return (n, m.cfg.n_inst, m.cfg.n_features)


class CgbSignCoinP(NeuronComputationModel):
    def generate_batch(self, batch_size):
        s = _shape(self, batch_size)
        p = self.feature_probability
        sign = torch.where(torch.rand(s) < p, -1.0, 1.0)
        return torch.where(torch.rand(s) < p, sign * torch.rand(s), 0.0)


class CgbSignCoinOneMinusP(NeuronComputationModel):
    def generate_batch(self, batch_size):
        s = _shape(self, batch_size)
        p = self.feature_probability
        sign = torch.where(torch.rand(s) > p, -1.0, 1.0)
        return torch.where(torch.rand(s) < p, sign * torch.rand(s), 0.0)


class CgbSignCoinSkewed(NeuronComputationModel):
    def generate_batch(self, batch_size):
        s = _shape(self, batch_size)
        sign = torch.where(torch.rand(s) < 0.3, -1.0, 1.0)
        return torch.where(torch.rand(s) < self.feature_probability, sign * torch.rand(s), 0.0)


class CgbMagnitudeRule(NeuronComputationModel):
    def generate_batch(self, batch_size):
        s = _shape(self, batch_size)
        v = 2 * torch.rand(s) - 1
        return torch.where(v.abs() > 1 - self.feature_probability, v, 0.0)


class CgbPresenceUAsMagnitude(NeuronComputationModel):
    def generate_batch(self, batch_size):
        s = _shape(self, batch_size)
        u = torch.rand(s)
        sign = torch.where(torch.rand(s) < 0.5, -1.0, 1.0)
        return torch.where(u < self.feature_probability, sign * u, 0.0)


class CgbSameUOK(NeuronComputationModel):
    def generate_batch(self, batch_size):
        s = _shape(self, batch_size)
        p = self.feature_probability
        u = torch.rand(s)
        sign = torch.where(u < p / 2, -1.0, 1.0)
        return torch.where(u < p, sign * torch.rand(s), 0.0)


def test_sign_coin_p_named():
    err = assert_fails(C.test_computation_generate_batch, CgbSignCoinP, "sign_coin_biased")
    assert "follows p" in err.message and "probability p" in err.hint


def test_sign_coin_one_minus_p_named():
    err = assert_fails(C.test_computation_generate_batch, CgbSignCoinOneMinusP, "sign_coin_biased")
    assert "follows 1 - p" in err.message


def test_sign_coin_skewed_named():
    err = assert_fails(C.test_computation_generate_batch, CgbSignCoinSkewed, "sign_coin_fixed_bias")  # since AZ
    assert "fair" in err.hint and "fixed bias" in err.hint


def test_presence_from_magnitude_named():
    err = assert_fails(C.test_computation_generate_batch, CgbMagnitudeRule, "magnitude_decides_presence")
    assert "[1 - p, 1]" in err.message and "thresholding" in err.hint


def test_presence_uniform_as_magnitude_named():
    # |v| in [0, p]: the values span 2p around 0, which the existing reading names
    err = assert_fails(C.test_computation_generate_batch, CgbPresenceUAsMagnitude, "values_reuse_mask")
    assert "presence draw" in err.hint


def test_sign_from_presence_uniform_passes():
    assert_passes(C.test_computation_generate_batch, CgbSameUOK)


class ClSmoothAbs(NeuronComputationModel):
    def calculate_loss(self, out, batch):
        t = torch.sqrt(batch**2 + 1e-3)  # "differentiable" |x|
        return einops.reduce(self.importance * (t - out) ** 2, "b i f -> i", "mean").sum()


class ClAbsPlusEps(NeuronComputationModel):
    def calculate_loss(self, out, batch):
        return einops.reduce(self.importance * (batch.abs() + 1e-2 - out) ** 2, "b i f -> i", "mean").sum()


class ClSuperOK(NeuronComputationModel):
    def calculate_loss(self, out, batch):
        return ToyModel.calculate_loss(self, out, batch.abs())


def test_smoothed_abs_target_named():
    err = assert_fails(C.test_computation_calculate_loss, ClSmoothAbs, "target_smoothed_abs")
    assert "sqrt(x² + ε)" in err.hint and "batch.abs()" in err.hint


def test_abs_plus_eps_target_named():
    err = assert_fails(C.test_computation_calculate_loss, ClAbsPlusEps, "target_smoothed_abs")
    assert "ε added" in err.hint


def test_part1_loss_on_abs_passes():
    assert_passes(C.test_computation_calculate_loss, ClSuperOK)


class NfMatmulOK(NeuronModel):
    def forward(self, features):
        h = (self.W @ features.unsqueeze(-1)).squeeze(-1).clamp(min=0)
        out = (h.unsqueeze(-2) @ self.W).squeeze(-2)
        return torch.maximum(out + self.b_final, torch.zeros(()))


class CfBmmOK(NeuronComputationModel):
    def forward(self, features):
        h = torch.einsum("...if,idf->...id", features, self.W1).relu()
        return torch.einsum("...id,ifd->...if", h, self.W2).add(self.b_final).relu()


def test_matmul_forward_passes():
    assert_passes(C.test_neuron_forward, NfMatmulOK)


def test_torch_einsum_computation_forward_passes():
    assert_passes(C.test_computation_forward, CfBmmOK)


def test_relu_on_part1_forward_still_named():
    class NfSuperRelu(NeuronModel):
        def forward(self, features):
            return F.relu(ToyModel.forward(self, features))

    assert_fails(C.test_neuron_forward, NfSuperRelu, "no_hidden_relu")
