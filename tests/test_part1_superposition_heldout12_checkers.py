"""Proofs for part 1 after the fresh31 measurement: a loss that penalises each difference otherwise than by its
square (Huber / smooth L1, a higher power), named from its value and its gradient by the shared
`tests/loss_penalties.py`."""

from __future__ import annotations

import pytest
import torch.nn.functional as F

import tests.part1_superposition as p1
from solutions.part1_superposition import ToyModel
from tests.proving import assert_fails


def _loss_variant(calculate_loss):
    return type("Variant", (ToyModel,), {"calculate_loss": calculate_loss})


@pytest.mark.parametrize(
    "calculate_loss, code, words",
    [
        (
            lambda self, out, batch: (
                (self.importance * F.smooth_l1_loss(out, batch, reduction="none")).mean((0, 2)).sum()
            ),
            "huber_loss",
            "smooth-L1",
        ),
        (
            lambda self, out, batch: (
                (self.importance * F.huber_loss(out, batch, reduction="none", delta=0.5)).mean((0, 2)).sum()
            ),
            "huber_loss",
            "delta 0.5",
        ),
        (
            lambda self, out, batch: (self.importance * (batch - out).abs() ** 3).mean((0, 2)).sum(),
            "error_power",
            "|target - out|³",
        ),
    ],
)
def test_loss_penalty_named(calculate_loss, code, words):
    failure = assert_fails(p1.test_calculate_loss, _loss_variant(calculate_loss), code)
    assert words in failure.hint
