"""Proofs for part 2 after held-out round AV: a forward pass whose outputs depend on the other examples (input
centred over the batch axis) is read by running examples alone against the batch (batch_dependent), not as a hidden
bias; a batch whose present values are all exactly 1 (values.bernoulli_(p) overwrote the values with the mask) is
named values_overwritten_by_mask, any other constant values_constant, before the sign tests; hidden pre-activations
centred over the neurons before the ReLU are a catalogue entry of the axis-statistic family (hidden_centred,
hidden_normalised, input_centred). The round's correct variants pass."""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import tests.part2_privileged_basis as C
from solutions.part2_privileged_basis import NeuronComputationModel, NeuronModel
from tests.proving import assert_fails, assert_passes

E = einops.einsum


def _s(m, b):
    return (b, m.cfg.n_inst, m.cfg.n_features)


# ---------------------------------------------------------------- misleading: outputs depend on other examples
class CfBatchCentred(NeuronComputationModel):
    def forward(self, x):
        x = x - x.mean(0, keepdim=True)  # "centre the inputs"
        h = F.relu(E(x, self.W1, "... i f, i d f -> ... i d"))
        return F.relu(E(h, self.W2, "... i d, i f d -> ... i f") + self.b_final)


class CfBatchNormalisedOut(NeuronComputationModel):
    def forward(self, x):
        h = F.relu(E(x, self.W1, "... i f, i d f -> ... i d"))
        out = E(h, self.W2, "... i d, i f d -> ... i f")
        return F.relu(out / out.abs().amax(0, keepdim=True).clamp_min(1.0) + self.b_final)


class CfBmmOK(NeuronComputationModel):
    def forward(self, x):
        lead = x.shape[:-2]
        n_inst, n_feat = x.shape[-2:]
        xf = x.reshape(-1, n_inst, n_feat).transpose(0, 1)
        h = torch.bmm(xf, self.W1.transpose(1, 2)).clamp(min=0)
        out = torch.baddbmm(self.b_final[:, None, :], h, self.W2.transpose(1, 2))
        return out.clamp(min=0).transpose(0, 1).reshape(*lead, n_inst, n_feat)


def test_input_centred_over_batch():
    err = assert_fails(C.test_computation_forward, CfBatchCentred, "batch_dependent")
    assert "run alone" in str(err) and "x.mean(0)" in str(err)


def test_output_scaled_by_batch_max():
    assert_fails(C.test_computation_forward, CfBatchNormalisedOut, "batch_dependent")


def test_computation_forward_correct_variant():
    assert_passes(C.test_computation_forward, CfBmmOK)


# ---------------------------------------------------------------- misleading: values overwritten by the mask
class CgbBernoulliInplace(NeuronComputationModel):
    def generate_batch(self, b):
        s = _s(self, b)
        values = 2 * torch.rand(s) - 1
        present = values.bernoulli_(self.feature_probability.expand(s))  # in-place: overwrites values
        return torch.where(present.bool(), values, 0.0)


class CgbConstantHalf(NeuronComputationModel):
    def generate_batch(self, b):
        s = _s(self, b)
        return torch.where(torch.rand(s) < self.feature_probability, 0.5, 0.0)


class CgbUniformDistOK(NeuronComputationModel):
    def generate_batch(self, b):
        s = _s(self, b)
        v = torch.distributions.Uniform(-1.0, 1.0).sample(s)
        return v * torch.bernoulli(self.feature_probability.expand(s))


def test_values_overwritten_by_mask():
    err = assert_fails(C.test_computation_generate_batch, CgbBernoulliInplace, "values_overwritten_by_mask")
    assert "exactly 1" in str(err) and "bernoulli_" in str(err)


def test_values_constant():
    assert_fails(C.test_computation_generate_batch, CgbConstantHalf, "values_constant")


def test_generate_batch_correct_variant():
    assert_passes(C.test_computation_generate_batch, CgbUniformDistOK)


# ---------------------------------------------------------------- unnamed: a statistic over an axis in a layer
class NfCentredHidden(NeuronModel):
    def forward(self, x):
        h = E(x, self.W, "... i f, i d f -> ... i d")
        h = F.relu(h - h.mean(-1, keepdim=True))  # "centre the neurons first"
        return F.relu(E(h, self.W, "... i d, i d f -> ... i f") + self.b_final)


class CfInputCentredFeatures(NeuronComputationModel):
    def forward(self, x):
        x = x - x.mean(-1, keepdim=True)
        h = F.relu(E(x, self.W1, "... i f, i d f -> ... i d"))
        return F.relu(E(h, self.W2, "... i d, i f d -> ... i f") + self.b_final)


class NfLoopLinearOK(NeuronModel):
    def forward(self, x):
        outs = []
        for k in range(self.W.shape[0]):
            Wk = self.W[k]
            h = F.relu(F.linear(x[..., k, :], Wk))
            outs.append(F.relu(F.linear(h, Wk.T, self.b_final[k])))
        return torch.stack(outs, -2)


def test_hidden_centred_before_relu():
    err = assert_fails(C.test_neuron_forward, NfCentredHidden, "hidden_centred")
    assert "h.mean(-1)" in str(err)


def test_input_centred_over_features():
    assert_fails(C.test_computation_forward, CfInputCentredFeatures, "input_centred")


def test_neuron_forward_correct_variant():
    assert_passes(C.test_neuron_forward, NfLoopLinearOK)
