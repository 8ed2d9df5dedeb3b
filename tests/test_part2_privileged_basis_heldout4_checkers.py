"""Proofs for part 2's diagnoses of the fresh18 held-out mistakes: the forward checkers now build the model with a
generic importance and feature probability (not all 1), so an output multiplied by either is caught and named; the
bias reduced over instances; the loss with one error factor on another target, and the target ReLU(-x)."""

from __future__ import annotations

import einops
import torch.nn.functional as F

import tests.part2_privileged_basis as checks2
from solutions.part2_privileged_basis import NeuronComputationModel, NeuronModel
from tests.proving import assert_fails

DOWN = "... inst feats, inst d_hidden feats -> ... inst d_hidden"
UP = "... inst d_hidden, inst d_hidden feats -> ... inst feats"
UP2 = "... inst d_hidden, inst feats d_hidden -> ... inst feats"


def _sub(base, **methods) -> type:
    return type("Variant", (base,), methods)


def comp_times_importance(self, x):
    h = F.relu(einops.einsum(x, self.W1, DOWN))
    return F.relu(einops.einsum(h, self.W2, UP2) + self.b_final) * self.importance


def neuron_times_probability(self, x):
    h = F.relu(einops.einsum(x, self.W, DOWN))
    return F.relu(einops.einsum(h, self.W, UP) + self.b_final) * self.feature_probability


def comp_bias_mean(self, x):
    h = F.relu(einops.einsum(x, self.W1, DOWN))
    return F.relu(einops.einsum(h, self.W2, UP2) + self.b_final.mean(0))


def loss_mixed(self, out, batch):
    return (self.importance * (batch.abs() - out) * (batch - out)).mean((0, 2)).sum()


def loss_relu_neg(self, out, batch):
    return (self.importance * (F.relu(-batch) - out) ** 2).mean((0, 2)).sum()


def test_forward_config_factors():
    err = assert_fails(
        checks2.test_computation_forward, _sub(NeuronComputationModel, forward=comp_times_importance), "config_factor"
    )
    assert "self.importance" in err.hint and "output" in err.hint
    err = assert_fails(
        checks2.test_neuron_forward, _sub(NeuronModel, forward=neuron_times_probability), "config_factor"
    )
    assert "self.feature_probability" in err.hint


def test_bias_reduced_over_instances():
    err = assert_fails(
        checks2.test_computation_forward, _sub(NeuronComputationModel, forward=comp_bias_mean), "bias_reduced"
    )
    assert "b_final.mean(0)" in err.hint


def test_loss_targets():
    check = checks2.test_computation_calculate_loss
    err = assert_fails(check, _sub(NeuronComputationModel, calculate_loss=loss_mixed), "mixed_error_factors")
    assert "(batch - out)" in err.hint
    err = assert_fails(check, _sub(NeuronComputationModel, calculate_loss=loss_relu_neg), "target_relu")
    assert "ReLU(-x)" in err.hint
