"""Proofs for part 2's diagnoses of the fresh9 held-out mistakes: the importance summed out of the loss's mean, one
uniform giving sign and size, values scaled by the importance, and an input scale that is also an output-term scale."""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import tests.part2_privileged_basis as checks2
from solutions.part2_privileged_basis import NeuronComputationModel
from tests.proving import assert_fails


def comp_variant(**methods) -> type:
    return type("ComputationVariant", (NeuronComputationModel,), methods)


def _shape(self, n):
    return (n, self.cfg.n_inst, self.cfg.n_features)


def comp_loss_importance_summed(self, out, batch):
    return ((batch.abs() - out) ** 2).mean((0, 2)).mul(self.importance.sum(-1)).sum()


def comp_forward_scaled_output(self, x):
    h = F.relu(einops.einsum(x, self.W1, "... i f, i d f -> ... i d"))
    out = einops.einsum(h, self.W2, "... i d, i f d -> ... i f") / self.cfg.d_hidden**0.5
    return F.relu(out + self.b_final)


def comp_gen_one_uniform(self, n):
    s = _shape(self, n)
    v = torch.rand(s)
    return torch.where(torch.rand(s) < self.feature_probability, torch.where(v < 0.5, -v, v), 0.0)


def comp_gen_times_importance(self, n):
    s = _shape(self, n)
    return torch.where(torch.rand(s) < self.feature_probability, (2 * torch.rand(s) - 1) * self.importance, 0.0)


def test_computation_held_out():
    err = assert_fails(
        checks2.test_computation_forward, comp_variant(forward=comp_forward_scaled_output), "input_transformed"
    )
    assert "1/√d_hidden = 1/√4" in err.hint and "output weights term" in err.hint
    err = assert_fails(
        checks2.test_computation_generate_batch, comp_variant(generate_batch=comp_gen_one_uniform), "value_distribution"
    )
    assert "where(v < 0.5, -v, v)" in err.hint
    model = comp_variant(generate_batch=comp_gen_times_importance)
    assert_fails(checks2.test_computation_generate_batch, model, "values_scaled_by_table")


def test_computation_loss_importance_summed():
    model = comp_variant(calculate_loss=comp_loss_importance_summed)
    assert_fails(checks2.test_computation_calculate_loss, model, "importance_summed")


def comp_forward_output_sign(self, x):
    h = F.relu(einops.einsum(x, self.W1, "... i f, i d f -> ... i d"))
    return F.relu(self.b_final - einops.einsum(h, self.W2, "... i d, i f d -> ... i f"))


def test_part2_heldout11_output_sign():
    err = assert_fails(
        checks2.test_computation_forward, comp_variant(forward=comp_forward_output_sign), "output_term_sign"
    )
    assert "minus sign" in err.hint and "not a ReLU" not in err.hint
