"""Proofs for part 2's weights scrambled by a reshape where a transpose belongs (part 3's shared
`regrouped_candidates`, applied to the computation model's W1, W1.mT and W2.mT)."""

from __future__ import annotations

import einops
import pytest
import torch.nn.functional as F

import tests.part2_privileged_basis as checks2
from solutions.part2_privileged_basis import NeuronComputationModel
from tests.proving import assert_fails

DOWN = "... inst feats, inst d feats -> ... inst d"
UP2 = "... inst d, inst feats d -> ... inst feats"


def _forward(W1_of, W2_of):
    def forward(self, x):
        h = F.relu(einops.einsum(x, W1_of(self.W1), DOWN))
        return F.relu(einops.einsum(h, W2_of(self.W2), UP2) + self.b_final)

    return type("Variant", (NeuronComputationModel,), {"forward": forward})


@pytest.mark.parametrize(
    "W1_of, W2_of, name",
    [
        (lambda W: W, lambda W: W.mT.reshape(W.shape), "W2.mT.reshape"),
        (lambda W: W.mT.reshape(W.shape), lambda W: W, "W1.mT.reshape"),
        (lambda W: W.reshape(W.shape[0], W.shape[2], W.shape[1]).mT, lambda W: W, "W1.reshape"),
    ],
)
def test_computation_weight_reshaped_not_transposed(W1_of, W2_of, name):
    failure = assert_fails(checks2.test_computation_forward, _forward(W1_of, W2_of), "reshape_not_transpose")
    assert name in failure.hint


def _hidden_offset(offset_of):
    def forward(self, x):
        h = F.relu(einops.einsum(x, self.W1, DOWN) + offset_of(self))
        return F.relu(einops.einsum(h, self.W2, UP2) + self.b_final)

    return type("Variant", (NeuronComputationModel,), {"forward": forward})


@pytest.mark.parametrize(
    "offset_of",
    [
        lambda self: self.b_final.mean(-1, keepdim=True),  # one per instance, hidden by the ReLU when negative
        lambda self: -0.3,
        lambda self: self.b_final[:, : self.cfg.d_hidden],  # one per hidden neuron, some positive
    ],
)
def test_computation_hidden_bias_is_named(offset_of):
    failure = assert_fails(checks2.test_computation_forward, _hidden_offset(offset_of), "hidden_bias")
    assert "inside the hidden layer" in failure.hint
