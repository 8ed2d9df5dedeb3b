"""Proofs for part 5's checks changed after the fresh13 held-out measurement: generate_batch accepts every correct
way of drawing (one draw per instance, one per example), not only one draw for the whole batch."""

from __future__ import annotations

import torch

import solutions.part5_toy_saes as P
import tests.part5_toy_saes as checks
from tests.proving import assert_fails, assert_passes


def _with(**methods) -> type:
    return type("Heldout4ToySAE", (P.ToySAE,), methods)


def test_generate_batch_one_draw_per_instance_passes():
    def generate_batch(self, batch_size):
        hs = [self.model.generate_batch(batch_size)[:, i] @ self.model.W[i].T for i in range(self.cfg.n_inst)]
        return torch.stack(hs, dim=1)

    assert_passes(checks.test_generate_batch, _with(generate_batch=generate_batch))


def test_generate_batch_one_draw_per_example_passes():
    def generate_batch(self, batch_size):
        xs = torch.cat([self.model.generate_batch(1) for _ in range(batch_size)])
        return torch.einsum("bif,idf->bid", xs, self.model.W)

    assert_passes(checks.test_generate_batch, _with(generate_batch=generate_batch))


def test_generate_batch_per_instance_draws_still_name_mistakes():
    def generate_batch(self, batch_size):  # per-instance draws, but h normalised: still named
        hs = [self.model.generate_batch(batch_size)[:, i] @ self.model.W[i].T for i in range(self.cfg.n_inst)]
        h = torch.stack(hs, dim=1)
        return h / (h.norm(dim=-1, keepdim=True) + 1e-8)

    assert_fails(checks.test_generate_batch, _with(generate_batch=generate_batch), "normalized_h")
