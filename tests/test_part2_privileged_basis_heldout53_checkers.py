"""Proofs for part 2 after held-out round AZ (fresh53).

NeuronComputationModel.calculate_loss now names:
* importance changes read back from the gradient (`part1_superposition_weight_readings`): a weighted average
  (`importance_weighted_average`), divided by each instance's largest (`importance_normalised`), reversed
  (`importance_reordered`), a cumsum (`importance_accumulated`), one feature's for all (`importance_one_entry`), a
  logsumexp over instances (`instances_logsumexp`), a normalised MSE (`normalised_mse`), a relative error
  (`relative_error`);
* a max over the batch where the mean belongs (`loss_reduction`, part 1's reduction reading);
* the target (batch + 1) / 2 (`target_rescaled`) and |batch| centred over the batch (`target_centred`).
NeuronModel.forward names b_final added to the input before the first product (`bias_on_input`), and a hidden
layer divided by its sum over the neurons is among the causes the one-neuron probe lists (`hidden_nonlinearity`).
computation_generate_batch names a sign coin with a fixed bias (`sign_coin_fixed_bias`) and values that fill only
[-0.9, 0.9] as a draw scaled by 0.9 (`value_distribution`) and values drawn in float16 (`values_low_precision`).
Both forward checks tell apart what carries instance 0 into other instances: its b_final (`bias_other_instance`,
b_final.roll(1, 0)) or its weights (`weights_other_instance`, W.mean(0)); the one-neuron probe names a tanh hidden
layer. The loss names a softmax of the importance (`importance_softmax`) and the target |batch| / |batch|.amax(0)
(`target_rescaled`).
The round's correct variants pass.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

import tests.part2_privileged_basis as C
from solutions.part2_privileged_basis import NeuronComputationModel, NeuronModel
from tests.proving import assert_fails, assert_passes


def _loss(fn):
    return type("LossV", (NeuronComputationModel,), {"calculate_loss": fn})


def _sq(o, b):
    return (b.abs() - o) ** 2


LOSSES = {
    "importance_weighted_average": lambda s, o, b: (
        (s.importance * _sq(o, b)).sum((0, 2)) / (s.importance.sum(-1) * b.shape[0])
    ).sum(),
    "importance_normalised": lambda s, o, b: (
        ((s.importance / s.importance.amax(-1, keepdim=True)) * _sq(o, b)).mean((0, 2)).sum()
    ),
    "importance_reordered": lambda s, o, b: (s.importance.flip(-1) * _sq(o, b)).mean((0, 2)).sum(),
    "importance_accumulated": lambda s, o, b: (s.importance.cumsum(-1) * _sq(o, b)).mean((0, 2)).sum(),
    "importance_one_entry": lambda s, o, b: (s.importance[:, :1] * _sq(o, b)).mean((0, 2)).sum(),
    "instances_logsumexp": lambda s, o, b: torch.logsumexp((s.importance * _sq(o, b)).mean((0, 2)), 0),
    "normalised_mse": lambda s, o, b: (s.importance * _sq(o, b) / b.abs().var(0)).mean((0, 2)).sum(),
    "relative_error": lambda s, o, b: (s.importance * _sq(o, b) / (b**2 + 1e-6)).mean((0, 2)).sum(),
    "importance_softmax": lambda s, o, b: (s.importance.softmax(-1) * _sq(o, b)).mean((0, 2)).sum(),
    "loss_reduction": lambda s, o, b: (s.importance * _sq(o, b)).amax(0).mean(-1).sum(),
    "target_rescaled": lambda s, o, b: (s.importance * ((b + 1) / 2 - o) ** 2).mean((0, 2)).sum(),
    "target_centred": lambda s, o, b: (s.importance * (b.abs() - b.abs().mean(0) - o) ** 2).mean((0, 2)).sum(),
}


def test_loss_mistakes_named():
    for code, fn in LOSSES.items():
        assert_fails(C.test_computation_calculate_loss, _loss(fn), code)


class NfBiasOnInput(NeuronModel):
    def forward(self, x):
        h = F.relu(torch.einsum("...if,idf->...id", x + self.b_final, self.W))
        return F.relu(torch.einsum("...id,idf->...if", h, self.W))


def test_bias_on_input_named():
    assert_fails(C.test_neuron_forward, NfBiasOnInput, "bias_on_input")


def _nf(edit_w=lambda w: w, edit_b=lambda b: b):
    def forward(self, x):
        W = edit_w(self.W)
        h = F.relu(torch.einsum("...if,idf->...id", x, W))
        return F.relu(torch.einsum("...id,idf->...if", h, W) + edit_b(self.b_final))

    return type("NfV", (NeuronModel,), {"forward": forward})


class CfTanh(NeuronComputationModel):
    def forward(self, x):
        h = torch.tanh(torch.einsum("...if,idf->...id", x, self.W1))
        return F.relu(torch.einsum("...id,ifd->...if", h, self.W2) + self.b_final)


def test_instance_sources_and_activation_named():
    assert_fails(C.test_neuron_forward, _nf(edit_b=lambda b: b.roll(1, 0)), "bias_other_instance")
    mean_w = lambda w: w.mean(0, keepdim=True).expand_as(w)
    assert_fails(C.test_neuron_forward, _nf(edit_w=mean_w), "weights_other_instance")
    err = assert_fails(C.test_computation_forward, CfTanh, "hidden_nonlinearity")
    assert "it is tanh" in err.hint
    target = lambda s, o, b: (s.importance * (b.abs() / b.abs().amax(0) - o) ** 2).mean((0, 2)).sum()
    assert_fails(C.test_computation_calculate_loss, _loss(target), "target_rescaled")


class NfSumNormalised(NeuronModel):
    def forward(self, x):
        h = F.relu(torch.einsum("...if,idf->...id", x, self.W))
        h = h / (h.sum(-1, keepdim=True) + 1e-8)
        return F.relu(torch.einsum("...id,idf->...if", h, self.W) + self.b_final)


def test_hidden_sum_normalised_listed():
    err = assert_fails(C.test_neuron_forward, NfSumNormalised, "hidden_nonlinearity")
    assert "h / h.sum(-1)" in err.hint


def _values(fn):
    def generate_batch(self, n):
        s = (n, self.cfg.n_inst, self.cfg.n_features)
        d = self.b_final.device
        return torch.where(torch.rand(s, device=d) < self.feature_probability, fn(s, d), 0.0)

    return type("CgV", (NeuronComputationModel,), {"generate_batch": generate_batch})


def test_value_mistakes_named():
    half = lambda s, d: (2 * torch.rand(s, dtype=torch.float16) - 1).float().to(d)
    assert_fails(C.test_computation_generate_batch, _values(half), "values_low_precision")
    third = lambda s, d: torch.rand(s, device=d) * torch.where(torch.randint(0, 3, s, device=d) > 0, 1.0, -1.0)
    assert_fails(C.test_computation_generate_batch, _values(third), "sign_coin_fixed_bias")
    scaled = lambda s, d: 0.9 * (2 * torch.rand(s, device=d) - 1)
    err = assert_fails(C.test_computation_generate_batch, _values(scaled), "value_distribution")
    assert "scaled by about 0.9" in err.hint


class NfMask(NeuronModel):
    def forward(self, x):
        h = torch.einsum("...if,idf->...id", x, self.W)
        return F.relu(torch.einsum("...id,idf->...if", h * (h > 0), self.W) + self.b_final)


class CgSignTimesMagnitude(NeuronComputationModel):
    def generate_batch(self, n):
        s = (n, self.cfg.n_inst, self.cfg.n_features)
        d = self.b_final.device
        sign = torch.randint(0, 2, s, device=d) * 2 - 1
        return torch.where(torch.rand(s, device=d) < self.feature_probability, torch.rand(s, device=d) * sign, 0.0)


class CgOneUniform(NeuronComputationModel):
    def generate_batch(self, n):
        u = torch.rand(n, self.cfg.n_inst, self.cfg.n_features, device=self.b_final.device)
        p = self.feature_probability
        return torch.where(u < p, 2 * u / p - 1, torch.zeros((), device=u.device))


class ClWhere(NeuronComputationModel):
    def calculate_loss(self, out, batch):
        err = (torch.where(batch < 0, -batch, batch) - out).square()
        return (self.importance * err).sum((0, 2)).div(batch.shape[0] * batch.shape[2]).sum()


def test_correct_variants_pass():
    assert_passes(C.test_neuron_forward, NfMask)
    assert_passes(C.test_computation_generate_batch, CgSignTimesMagnitude)
    assert_passes(C.test_computation_generate_batch, CgOneUniform)
    assert_passes(C.test_computation_calculate_loss, ClWhere)
