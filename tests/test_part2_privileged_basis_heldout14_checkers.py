"""Proofs for part 2 after the fresh43 measurement: U[-1, 1] values with the negatives zeroed by a ReLU told from a
U[0, 1] draw by the nonzero rates at p / 2 (negatives_zeroed), a .squeeze() caught by generate_batch(1) (squeezed),
hidden activations computed as [... d_hidden inst] and reshaped back (hidden_reshaped_not_transposed), and the loss's
errors kept only where out > 0 (dead_outputs_dropped)."""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import tests.part2_privileged_basis as C
from solutions.part2_privileged_basis import NeuronComputationModel, NeuronModel
from tests.proving import assert_fails


def _cv(**methods):
    return type("CV", (NeuronComputationModel,), methods)


def _draw(self, n):
    s = (n, self.cfg.n_inst, self.cfg.n_features)
    return torch.where(torch.rand(s) < self.feature_probability, 2 * torch.rand(s) - 1, 0.0)


def test_relu_values_named():
    err = assert_fails(
        C.test_computation_generate_batch,
        _cv(generate_batch=lambda self, n: F.relu(_draw(self, n))),
        "negatives_zeroed",
    )
    assert "F.relu" in err.hint


def test_squeezed_batch_named():
    err = assert_fails(
        C.test_computation_generate_batch, _cv(generate_batch=lambda self, n: _draw(self, n).squeeze()), "squeezed"
    )
    assert ".squeeze()" in err.hint


def test_hidden_reshaped_named():
    def forward(self, x):
        h = F.relu(einops.einsum(x, self.W, "... inst feats, inst d_hidden feats -> ... d_hidden inst"))
        h = h.reshape(*h.shape[:-2], h.shape[-1], h.shape[-2])
        return F.relu(einops.einsum(h, self.W, "... inst d, inst d feats -> ... inst feats") + self.b_final)

    def forward2(self, x):
        h = F.relu(einops.einsum(x, self.W1, "... inst feats, inst d_hidden feats -> ... d_hidden inst"))
        h = h.reshape(*h.shape[:-2], h.shape[-1], h.shape[-2])
        return F.relu(einops.einsum(h, self.W2, "... inst d, inst feats d -> ... inst feats") + self.b_final)

    code = "hidden_reshaped_not_transposed"
    assert_fails(C.test_neuron_forward, type("NV", (NeuronModel,), {"forward": forward}), code)
    assert_fails(C.test_computation_forward, _cv(forward=forward2), code)


def test_dead_outputs_dropped_named():
    def calculate_loss(self, out, batch):
        err = self.importance * (batch.abs() - out) ** 2 * (out > 0)
        return einops.reduce(err, "batch inst feats -> inst", "mean").sum()

    assert_fails(C.test_computation_calculate_loss, _cv(calculate_loss=calculate_loss), "dead_outputs_dropped")
