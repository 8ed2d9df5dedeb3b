"""Proofs for part 2's fresh19 held-out fix: the computation loss with the nonlinearity on the output instead of the
target, (x - |out|)² or (x - ReLU(out))², named."""

from __future__ import annotations

import torch

import tests.part2_privileged_basis as checks2
from solutions.part2_privileged_basis import NeuronComputationModel
from tests.proving import assert_fails


def _sub(**methods) -> type:
    return type("Variant", (NeuronComputationModel,), methods)


def loss_abs_out(self, out, batch):
    return (self.importance * (batch - out.abs()) ** 2).mean((0, 2)).sum()


def loss_relu_out(self, out, batch):
    return (self.importance * (batch - torch.relu(out)) ** 2).mean((0, 2)).sum()


def test_nonlinearity_on_output_named():
    err = assert_fails(checks2.test_computation_calculate_loss, _sub(calculate_loss=loss_abs_out), "abs_on_output")
    assert "(batch - |out|)²" in err.hint and "batch.abs() - out" in err.hint
    err = assert_fails(checks2.test_computation_calculate_loss, _sub(calculate_loss=loss_relu_out), "abs_on_output")
    assert "ReLU(out)" in err.hint
