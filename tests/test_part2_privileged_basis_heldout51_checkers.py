"""Proofs for part 2 after held-out round AX (fresh49): one product reading its weights with the d_hidden axis
reversed (the write in NeuronModel, W1 in NeuronComputationModel) is named (hidden_order). The round's correct
variants pass."""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import tests.part2_privileged_basis as C
from solutions.part2_privileged_basis import NeuronComputationModel, NeuronModel
from tests.proving import assert_fails, assert_passes

E = einops.einsum


class NfWriteFlipped(NeuronModel):
    def forward(self, x):
        h = F.relu(E(x, self.W, "... i f, i d f -> ... i d"))
        return F.relu(E(h, self.W.flip(1), "... i d, i d f -> ... i f") + self.b_final)


class CfReadFlipped(NeuronComputationModel):
    def forward(self, x):
        h = F.relu(E(x, self.W1.flip(1), "... i f, i d f -> ... i d"))
        return F.relu(E(h, self.W2, "... i d, i f d -> ... i f") + self.b_final)


class NfMTOK(NeuronModel):
    def forward(self, x):
        h = E(x, self.W, "... i f, i d f -> ... i d").clamp_min(0)
        return (E(h, self.W.mT, "... i d, i f d -> ... i f") + self.b_final).clamp_min(0)


class CfLoopLinearOK(NeuronComputationModel):
    def forward(self, x):
        outs = [
            F.relu(F.linear(F.relu(F.linear(x[..., k, :], self.W1[k])), self.W2[k], self.b_final[k]))
            for k in range(self.cfg.n_inst)
        ]
        return torch.stack(outs, -2)


class CgbUniformDefaultOK(NeuronComputationModel):
    def generate_batch(self, B):
        s = (B, self.cfg.n_inst, self.cfg.n_features)
        v = torch.empty(s).uniform_(-1)
        v[torch.rand(s) >= self.feature_probability] = 0
        return v


class ClMeanAllOK(NeuronComputationModel):
    def calculate_loss(self, out, batch):
        return (self.importance * (out - batch.abs()).square()).mean() * out.shape[1]


def test_hidden_axis_reversed_on_write():
    err = assert_fails(C.test_neuron_forward, NfWriteFlipped, "hidden_order")
    assert "W.flip(1)" in err.hint


def test_hidden_axis_reversed_on_read():
    err = assert_fails(C.test_computation_forward, CfReadFlipped, "hidden_order")
    assert "W.flip(1)" in err.hint


def test_round_ax_correct_variants_pass():
    assert_passes(C.test_neuron_forward, NfMTOK)
    assert_passes(C.test_computation_forward, CfLoopLinearOK)
    assert_passes(C.test_computation_generate_batch, CgbUniformDefaultOK)
    assert_passes(C.test_computation_calculate_loss, ClMeanAllOK)
