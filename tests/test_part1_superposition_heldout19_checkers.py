"""Proofs for part 1 after the fresh42 measurement: every example forced to have a present feature is named from
the missing empty examples (no_empty_examples), and a .squeeze() dropping a batch of 1 is named (squeezed)."""

from __future__ import annotations

import torch

import tests.part1_superposition as C
from solutions.part1_superposition import ToyModel
from tests.proving import assert_fails


def test_forced_present_named():
    def generate_batch(self, n):
        s = (n, self.cfg.n_inst, self.cfg.n_features)
        pr = torch.rand(s) < self.feature_probability
        empty = ~pr.any(-1)
        pr[..., 0] |= empty
        return torch.where(pr, torch.rand(s), 0.0)

    err = assert_fails(
        C.test_generate_batch, type("TV", (ToyModel,), {"generate_batch": generate_batch}), "no_empty_examples"
    )
    assert "forced present" in err.hint


def test_squeeze_batch_of_one_named():
    def forward(self, x):
        h = self.W @ x.unsqueeze(-1)
        return torch.relu((self.W.mT @ h).squeeze() + self.b_final)

    err = assert_fails(C.test_forward, type("TV", (ToyModel,), {"forward": forward}), "squeezed")
    assert ".squeeze()" in err.hint
