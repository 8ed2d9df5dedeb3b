"""Proofs for part 2 after the fresh41 measurement: NaN values located (no finite negative value left: a sign drawn
as a fractional power of -1), the errors of absent features masked out of the loss (absent_masked), and an extra
leading axis read back to the bias (b_final.unsqueeze(0))."""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import tests.part2_privileged_basis as C
from solutions.part2_privileged_basis import NeuronComputationModel, NeuronModel
from tests.proving import assert_fails

E1 = "... inst feats, inst d feats -> ... inst d"
E2 = "... inst d, inst d feats -> ... inst feats"
E2c = "... inst d, inst feats d -> ... inst feats"


def test_neuron_bias_extra_axis_named():
    def forward(self, x):
        h = F.relu(einops.einsum(x, self.W, E1))
        return F.relu(einops.einsum(h, self.W, E2) + self.b_final[None])

    err = assert_fails(C.test_neuron_forward, type("NV", (NeuronModel,), {"forward": forward}), "leading_dims")
    assert "extra leading axis of size 1" in err.hint and "b_final[None]" in err.hint


def test_computation_bias_unsqueeze_named():
    def forward(self, x):
        h = F.relu(einops.einsum(x, self.W1, E1))
        return F.relu(einops.einsum(h, self.W2, E2c) + self.b_final.unsqueeze(0))

    cls = type("CV", (NeuronComputationModel,), {"forward": forward})
    err = assert_fails(C.test_computation_forward, cls, "leading_dims")
    assert "with b_final replaced by a scalar the output has the right shape" in err.hint


def test_float_power_sign_nan_located():
    def generate_batch(self, n):
        s = (n, self.cfg.n_inst, self.cfg.n_features)
        v = torch.rand(s) * (-1) ** torch.rand(s)
        return torch.where(torch.rand(s) < self.feature_probability, v, 0.0)

    cls = type("CV", (NeuronComputationModel,), {"generate_batch": generate_batch})
    err = assert_fails(C.test_computation_generate_batch, cls, "nan_negative")
    assert "no finite value is negative" in err.message and "(-1) ** u" in err.hint


def test_absent_errors_masked_named():
    def calculate_loss(self, out, batch):
        e = self.importance * (batch.abs() - out) ** 2 * (batch != 0)
        return einops.reduce(e, "b i f -> i", "mean").sum()

    cls = type("CV", (NeuronComputationModel,), {"calculate_loss": calculate_loss})
    assert_fails(C.test_computation_calculate_loss, cls, "absent_masked")
