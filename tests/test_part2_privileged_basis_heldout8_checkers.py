"""Proofs for part 2 after the fresh31 measurement: a capped hidden activation (F.relu6, clamp(max=…)) named by
the output saturating as one feature grows (`tests/part2_privileged_basis_saturation.py`); a Huber loss against |x|
named by the shared penalty readings (`tests/loss_penalties.py`)."""

from __future__ import annotations

import einops
import pytest
import torch.nn.functional as F

import tests.part2_privileged_basis as checks2
from solutions.part2_privileged_basis import NeuronComputationModel, NeuronModel
from tests.proving import assert_fails

DOWN = "... inst feats, inst d feats -> ... inst d"
UP = "... inst d, inst d feats -> ... inst feats"
UP2 = "... inst d, inst feats d -> ... inst feats"


@pytest.mark.parametrize("act", [F.relu6, lambda t: t.clamp(min=0, max=2.5)])
def test_capped_hidden_activation(act):
    def forward(self, x):
        return F.relu(einops.einsum(act(einops.einsum(x, self.W, DOWN)), self.W, UP) + self.b_final)

    def forward2(self, x):
        return F.relu(einops.einsum(act(einops.einsum(x, self.W1, DOWN)), self.W2, UP2) + self.b_final)

    failure = assert_fails(
        checks2.test_neuron_forward, type("V", (NeuronModel,), {"forward": forward}), "capped_activation"
    )
    assert "relu6" in failure.hint
    variant = type("V", (NeuronComputationModel,), {"forward": forward2})
    assert_fails(checks2.test_computation_forward, variant, "capped_activation")


def test_computation_loss_smooth_l1_beta():
    def calculate_loss(self, out, batch):
        return (self.importance * F.smooth_l1_loss(out, batch.abs(), reduction="none", beta=0.5)).mean((0, 2)).sum()

    variant = type("V", (NeuronComputationModel,), {"calculate_loss": calculate_loss})
    failure = assert_fails(checks2.test_computation_calculate_loss, variant, "huber_loss")
    assert "threshold 0.5" in failure.hint
