"""Proofs for part 2 after the fresh40 measurement: calculate_loss's target read off the gradient (a loss of the right
form with another elementwise function of the batch as target, code `target_function`), named when it is a function a
learner might write (-batch, √|batch|, sign(batch))."""

from __future__ import annotations

import torch

import tests.part2_privileged_basis as C
from solutions.part2_privileged_basis import NeuronComputationModel
from tests.proving import assert_fails, assert_passes


def _loss_with_target(target_of):
    def calculate_loss(self, out, batch):
        return (self.importance * (target_of(batch) - out) ** 2).mean(dim=(0, 2)).sum()

    return type("CV", (NeuronComputationModel,), {"calculate_loss": calculate_loss})


def test_target_negated_named():
    err = assert_fails(C.test_computation_calculate_loss, _loss_with_target(lambda x: -x), "target_function")
    assert "t = -batch (-x), not |batch|" in err.hint


def test_target_sqrt_named():
    err = assert_fails(
        C.test_computation_calculate_loss, _loss_with_target(lambda x: x.abs().sqrt()), "target_function"
    )
    assert "t = √|batch|" in err.hint


def test_target_sign_named():
    err = assert_fails(C.test_computation_calculate_loss, _loss_with_target(torch.sign), "target_function")
    assert "t = sign(batch)" in err.hint


def test_abs_target_written_otherwise_passes():
    assert_passes(C.test_computation_calculate_loss, _loss_with_target(lambda x: torch.where(x < 0, -x, x)))
