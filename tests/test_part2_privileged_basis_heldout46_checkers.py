"""Proofs for part 2 after held-out round AU: a ReLU on the output weights W2 is named with the per-term ReLU it
equals on values (h ≥ 0), a sign read off the presence uniform is named as such (sign_from_presence_draw, not a biased
coin), and a loss divided by the number of present entries is named (mean_over_present, not the importance weights);
and the round's correct variants."""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import tests.part2_privileged_basis as C
from solutions.part2_privileged_basis import NeuronComputationModel, NeuronModel
from tests.proving import assert_fails, assert_passes

E = einops.einsum


def _shape(m, n):
    return (n, m.cfg.n_inst, m.cfg.n_features)


class CfReluW2(NeuronComputationModel):
    def forward(self, x):
        h = F.relu(E(x, self.W1, "... i f, i d f -> ... i d"))
        return F.relu(E(h, F.relu(self.W2), "... i d, i f d -> ... i f") + self.b_final)


class NfReluWOut(NeuronModel):
    def forward(self, x):
        h = F.relu(E(x, self.W, "... i f, i d f -> ... i d"))
        return F.relu(E(h, F.relu(self.W), "... i d, i d f -> ... i f") + self.b_final)


class CfMatmulOK(NeuronComputationModel):
    def forward(self, x):
        h = (self.W1 @ x.unsqueeze(-1)).squeeze(-1).clamp(min=0)
        return ((self.W2 @ h.unsqueeze(-1)).squeeze(-1) + self.b_final).clamp(min=0)


class NfInplaceOK(NeuronModel):
    def forward(self, x):
        h = torch.einsum("...if,idf->...id", x, self.W)
        F.relu(h, inplace=True)
        return F.relu(torch.einsum("...id,idf->...if", h, self.W) + self.b_final)


def test_relu_on_output_weights_named_with_per_term():
    err = assert_fails(C.test_computation_forward, CfReluW2, "relu_per_term")
    assert "F.relu(self.W2)" in str(err) and "h_d" in str(err)
    err = assert_fails(C.test_neuron_forward, NfReluWOut, "relu_per_term")
    assert "F.relu(self.W)" in str(err)


def test_forward_correct_variants():
    assert_passes(C.test_computation_forward, CfMatmulOK)
    assert_passes(C.test_neuron_forward, NfInplaceOK)


class CgbSignFromPresenceU(NeuronComputationModel):
    def generate_batch(self, b):
        s = _shape(self, b)
        u = torch.rand(s)
        sign = torch.where(u < 0.5, -1.0, 1.0)
        return torch.where(u < self.feature_probability, sign * torch.rand(s), 0.0)


class CgbSignFromPresenceUpper(NeuronComputationModel):
    def generate_batch(self, b):
        s = _shape(self, b)
        u = torch.rand(s)
        return torch.where(u < self.feature_probability, torch.where(u > 0.5, -1.0, 1.0) * torch.rand(s), 0.0)


class CgbUniformOK(NeuronComputationModel):
    def generate_batch(self, b):
        s = _shape(self, b)
        present = torch.bernoulli(self.feature_probability.expand(s)).bool()
        return torch.empty(s).uniform_(-1, 1) * present


def test_sign_from_presence_uniform_named():
    err = assert_fails(C.test_computation_generate_batch, CgbSignFromPresenceU, "sign_from_presence_draw")
    assert "same uniform" in str(err)
    assert_fails(C.test_computation_generate_batch, CgbSignFromPresenceUpper, "sign_from_presence_draw")


def test_generate_batch_correct_variant():
    assert_passes(C.test_computation_generate_batch, CgbUniformOK)


class ClPresentCount(NeuronComputationModel):
    def calculate_loss(self, out, batch):
        e = (self.importance * (batch.abs() - out) ** 2).sum((0, 2))
        return (e / torch.count_nonzero(batch, dim=(0, 2)).clamp(min=1)).sum()


class ClPresentCountAll(NeuronComputationModel):
    def calculate_loss(self, out, batch):
        return (self.importance * (batch.abs() - out) ** 2).sum() / (batch != 0).sum()


class ClMseSumOK(NeuronComputationModel):
    def calculate_loss(self, out, batch):
        B, _, n = batch.shape
        w = self.importance.sqrt()
        return F.mse_loss(w * out, w * batch.abs(), reduction="sum") / (B * n)


def test_loss_divided_by_present_count_named():
    err = assert_fails(C.test_computation_calculate_loss, ClPresentCount, "mean_over_present")
    assert "present entries" in str(err)
    assert_fails(C.test_computation_calculate_loss, ClPresentCountAll, "mean_over_present")


def test_loss_correct_variant():
    assert_passes(C.test_computation_calculate_loss, ClMseSumOK)
