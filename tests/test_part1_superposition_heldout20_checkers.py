"""Proofs for part 1 after the fresh43 measurement: an example never drawn (a loop from 1) is named from small
batches with every p = 0.9 (example_never_drawn), and batch[0] as every example's target is named
(first_example_target)."""

from __future__ import annotations

import einops
import torch

import tests.part1_superposition as C
from solutions.part1_superposition import ToyModel
from tests.proving import assert_fails


def test_example_zero_never_drawn_named():
    def generate_batch(self, n):
        out = torch.zeros(n, self.cfg.n_inst, self.cfg.n_features)
        for b in range(1, n):
            pres = torch.rand(self.cfg.n_inst, self.cfg.n_features) < self.feature_probability
            out[b] = torch.where(pres, torch.rand(self.cfg.n_inst, self.cfg.n_features), 0.0)
        return out

    err = assert_fails(
        C.test_generate_batch, type("TV", (ToyModel,), {"generate_batch": generate_batch}), "example_never_drawn"
    )
    assert "range(1, batch_size)" in err.hint


def test_first_example_target_named():
    def calculate_loss(self, out, batch):
        return einops.reduce(self.importance * (batch[0] - out) ** 2, "batch inst feats -> inst", "mean").sum()

    err = assert_fails(
        C.test_calculate_loss, type("TV", (ToyModel,), {"calculate_loss": calculate_loss}), "first_example_target"
    )
    assert "batch[0]" in err.hint
