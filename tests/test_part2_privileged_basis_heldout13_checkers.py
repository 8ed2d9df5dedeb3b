"""Proofs for part 2 after the fresh42 measurement: a .squeeze() that drops a size-1 batch axis (squeezed, a
batch of 1 among the generic inputs), values on a 0.01 grid named as a discretised draw (not as values shared over
the features: ties count as sharing only beyond the ties between different examples), a √U magnitude read back
from the CDF of |v|, and a symmetrised forward pass listed among the bias_term causes."""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import tests.part2_privileged_basis as C
from solutions.part2_privileged_basis import NeuronComputationModel
from tests.proving import assert_fails

E1 = "... inst feats, inst d feats -> ... inst d"
E2c = "... inst d, inst feats d -> ... inst feats"


def _cv(**methods):
    return type("CV", (NeuronComputationModel,), methods)


def _shape(self, n):
    return (n, self.cfg.n_inst, self.cfg.n_features)


def test_squeeze_drops_batch_of_one_named():
    def forward(self, x):
        h = F.relu(self.W1 @ x.unsqueeze(-1))
        return F.relu((self.W2 @ h).squeeze() + self.b_final)

    err = assert_fails(C.test_computation_forward, _cv(forward=forward), "squeezed")
    assert ".squeeze()" in err.hint


def test_discretised_values_named_not_shared():
    def generate_batch(self, n):
        s = _shape(self, n)
        return torch.where(torch.rand(s) < self.feature_probability, torch.randint(-100, 101, s) / 100, 0.0)

    err = assert_fails(C.test_computation_generate_batch, _cv(generate_batch=generate_batch), "discrete_values")
    assert "grid of step 0.01" in err.message


def test_sqrt_magnitude_read_back():
    def generate_batch(self, n):
        s = _shape(self, n)
        v = torch.rand(s).sqrt() * (torch.randint(0, 2, s) * 2 - 1)
        return torch.where(torch.rand(s) < self.feature_probability, v, 0.0)

    err = assert_fails(C.test_computation_generate_batch, _cv(generate_batch=generate_batch), "value_distribution")
    assert "√rand" in err.hint and "t^2.0" in err.hint


def test_tanh_values_observed_not_asserted():
    def generate_batch(self, n):
        s = _shape(self, n)
        return torch.where(torch.rand(s) < self.feature_probability, torch.randn(s).tanh(), 0.0)

    err = assert_fails(C.test_computation_generate_batch, _cv(generate_batch=generate_batch), "value_distribution")
    assert "outer quarters" in err.hint and "e.g." in err.hint


def test_symmetrised_forward_listed():
    def forward(self, x):
        def f(z):
            h = F.relu(einops.einsum(z, self.W1, E1))
            return F.relu(einops.einsum(h, self.W2, E2c) + self.b_final)

        return f(x) + f(-x)

    err = assert_fails(C.test_computation_forward, _cv(forward=forward), "bias_term")
    assert "exactly 2 × ReLU(b_final)" in err.hint and "f(x) + f(-x)" in err.hint
