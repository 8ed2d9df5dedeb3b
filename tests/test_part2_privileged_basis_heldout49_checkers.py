"""Proofs for part 2 after the confidence audit (fresh48): the forward pass whose outputs depend on the other
examples (batch_dependent) names a batch statistic of the input only when it is read back (the right forward pass on
x - x.mean(0), x / x.norm(dim=0) or x / x.amax(0) reproduces the output); otherwise the hint states the observation
and names no cause (it used to say 'a statistic over the batch axis enters' for any example mixing). The absent
entries moved to one constant (shifted_after_mask) are described without claiming a shift after the mask. The past
misleading trials of rounds 45-47 fail with hints that don't name their wrong causes."""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import tests.part2_privileged_basis as C
from solutions.part2_privileged_basis import NeuronComputationModel, NeuronModel
from tests.proving import assert_fails

E = einops.einsum


def _s(m, b):
    return (b, m.cfg.n_inst, m.cfg.n_features)


# ---------------------------------------------------------------- batch_dependent: read back, or observed only
class CfBatchCentred(NeuronComputationModel):
    def forward(self, x):
        x = x - x.mean(0, keepdim=True)
        h = F.relu(E(x, self.W1, "... i f, i d f -> ... i d"))
        return F.relu(E(h, self.W2, "... i d, i f d -> ... i f") + self.b_final)


class CfOutputRolled(NeuronComputationModel):  # each example gets its neighbour's output: no statistic at all
    def forward(self, x):
        h = F.relu(E(x, self.W1, "... i f, i d f -> ... i d"))
        return F.relu(E(h, self.W2, "... i d, i f d -> ... i f") + self.b_final).roll(1, 0)


def test_batch_centred_read_back():
    err = assert_fails(C.test_computation_forward, CfBatchCentred, "batch_dependent")
    assert "Read back" in err.hint and "x - x.mean(0)" in err.hint


def test_rolled_output_not_called_a_statistic():
    err = assert_fails(C.test_computation_forward, CfOutputRolled, "batch_dependent")
    assert "Read back" not in err.hint and "statistic" not in err.hint and "run alone" in str(err)


# ---------------------------------------------------------------- absent entries at one constant
class CgbFilledMinusHalf(NeuronComputationModel):  # absent entries filled with -0.5 inside U[-1, 1]: no shift
    def generate_batch(self, b):
        s = _s(self, b)
        return torch.where(torch.rand(s) < self.feature_probability, 2 * torch.rand(s) - 1, -0.5)


def test_absent_fill_not_called_a_shift():
    err = assert_fails(C.test_computation_generate_batch, CgbFilledMinusHalf, "shifted_after_mask")
    assert "shift or rescale" not in err.hint and "filled with -0.5" in err.hint


# ---------------------------------------------------------------- past misleading trials (rounds 45-47)
class NfBf16Hidden(NeuronModel):
    def forward(self, features):
        h = F.relu(einops.einsum(features, self.W, "... i f, i d f -> ... i d")).bfloat16().float()
        return F.relu(einops.einsum(h, self.W, "... i d, i d f -> ... i f") + self.b_final)


class CgbSignCoinP(NeuronComputationModel):
    def generate_batch(self, batch_size):
        s = _s(self, batch_size)
        p = self.feature_probability
        sign = torch.where(torch.rand(s) < p, -1.0, 1.0)
        return torch.where(torch.rand(s) < p, sign * torch.rand(s), 0.0)


class CgbMagnitudeRule(NeuronComputationModel):
    def generate_batch(self, batch_size):
        s = _s(self, batch_size)
        v = 2 * torch.rand(s) - 1
        return torch.where(v.abs() > 1 - self.feature_probability, v, 0.0)


class CfReluW2(NeuronComputationModel):
    def forward(self, x):
        h = F.relu(E(x, self.W1, "... i f, i d f -> ... i d"))
        return F.relu(E(h, F.relu(self.W2), "... i d, i f d -> ... i f") + self.b_final)


class CgbSignFromPresenceU(NeuronComputationModel):
    def generate_batch(self, b):
        s = _s(self, b)
        u = torch.rand(s)
        sign = torch.where(u < 0.5, -1.0, 1.0)
        return torch.where(u < self.feature_probability, sign * torch.rand(s), 0.0)


class ClPresentCount(NeuronComputationModel):
    def calculate_loss(self, out, batch):
        e = (self.importance * (batch.abs() - out) ** 2).sum((0, 2))
        return (e / torch.count_nonzero(batch, dim=(0, 2)).clamp(min=1)).sum()


class CgbBernoulliInplace(NeuronComputationModel):
    def generate_batch(self, b):
        s = _s(self, b)
        values = 2 * torch.rand(s) - 1
        present = values.bernoulli_(self.feature_probability.expand(s))  # in-place: overwrites values
        return torch.where(present.bool(), values, 0.0)


def test_past_bf16_hidden():
    err = assert_fails(C.test_neuron_forward, NfBf16Hidden, "low_precision")
    assert "bfloat16" in err.hint


def test_past_sign_coin_p():
    err = assert_fails(C.test_computation_generate_batch, CgbSignCoinP, "sign_coin_biased")
    assert "per-cell table" not in err.hint and "follows p" in str(err)


def test_past_presence_from_magnitude():
    err = assert_fails(C.test_computation_generate_batch, CgbMagnitudeRule, "magnitude_decides_presence")
    assert "rand ** 0.41" not in err.hint


def test_past_relu_on_w2():
    err = assert_fails(C.test_computation_forward, CfReluW2, "relu_per_term")
    assert "W2" in err.hint


def test_past_sign_from_presence_uniform():
    err = assert_fails(C.test_computation_generate_batch, CgbSignFromPresenceU, "sign_from_presence_draw")
    assert "same uniform as the presence" in err.hint


def test_past_divide_by_present_count():
    err = assert_fails(C.test_computation_calculate_loss, ClPresentCount, "mean_over_present")
    assert "importance" not in err.hint.split(".")[0]


def test_past_input_centred_over_batch():
    err = assert_fails(C.test_computation_forward, CfBatchCentred, "batch_dependent")
    assert "bias" not in err.hint and "x - x.mean(0)" in err.hint


def test_past_bernoulli_inplace():
    err = assert_fails(C.test_computation_generate_batch, CgbBernoulliInplace, "values_overwritten_by_mask")
    assert "abs/ReLU/clamp" not in err.hint


# ---------------------------------------------------------------- sign coin not fair, no table reproduces it
class CgbSignByFeatureParity(NeuronComputationModel):  # odd features always positive: compared with 0.5, not biased
    def generate_batch(self, b):
        s = _s(self, b)
        odd = torch.arange(s[-1]) % 2 == 1
        sign = torch.where((torch.rand(s) < 0.5) & ~odd, -1.0, 1.0)
        return torch.where(torch.rand(s) < self.feature_probability, sign * torch.rand(s), 0.0)


def test_unfair_sign_without_read_back_names_no_comparison():
    err = assert_fails(C.test_computation_generate_batch, CgbSignByFeatureParity, "sign_coin_biased")
    assert "something other than 0.5" not in err.hint and "no cause is named" in err.hint


# ---------------------------------------------------------------- saturation: not placed on the hidden layer
class NfInputCapped(NeuronModel):  # the input clamped, hidden ReLU plain: the old hint said 'most likely hidden'
    def forward(self, features):
        h = F.relu(einops.einsum(features.clamp(max=2.0), self.W, "... i f, i d f -> ... i d"))
        return F.relu(einops.einsum(h, self.W, "... i d, i d f -> ... i f") + self.b_final)


def test_input_cap_not_placed_on_the_hidden_layer():
    err = assert_fails(C.test_neuron_forward, NfInputCapped, "capped_activation")
    assert "most likely on the hidden layer" not in err.hint and "not read back" in err.hint
