"""Proofs for part 4 after the fresh42 measurement: generate_batch squeezing the inst axis away on a model with
n_inst = 1 (`squeezed`), a schedule rounded to 2 decimals (`rounded`), compute_dimensionality with the sum over j run
only inside i's chunk (`chunk_local`) and with its output sorted per instance (`permuted`)."""

from __future__ import annotations

import math

import einops
import torch

import solutions.part4_double_descent as ref
import tests.part4_double_descent as checks
from solutions.part4_double_descent import DoubleDescentModel
from tests.proving import assert_fails


def test_squeezed_batch_on_one_instance():
    def gb(self, batch_size=None):
        return self.train_data.squeeze()

    failure = assert_fails(
        checks.test_generate_batch, type("DV", (DoubleDescentModel,), {"generate_batch": gb}), "squeezed"
    )
    assert "n_inst = 1" in failure.message and ".squeeze()" in failure.hint


def test_rounded_schedule():
    def lr(step, steps, warmup_steps):
        if step < warmup_steps:
            return round(step / warmup_steps, 2)
        return round(0.5 * (1 + math.cos(math.pi * (step - warmup_steps) / (steps - warmup_steps))), 2)

    failure = assert_fails(checks.test_warmup_cosine_lr, lr, "rounded")
    assert "2 decimals" in failure.hint


def test_chunk_local_overlaps():
    def cd(vectors, chunk=4):
        outs = []
        for s in range(0, vectors.shape[1], chunk):
            v = vectors[:, s : s + chunk]
            n2 = (v**2).sum(-1)
            u = v / n2.sqrt().clamp_min(1e-12)[..., None]
            outs.append(n2 / (einops.einsum(u, v, "k i d, k j d -> k i j") ** 2).sum(-1).clamp_min(1e-30))
        return torch.cat(outs, dim=1)

    failure = assert_fails(checks.test_compute_dimensionality, cd, "chunk_local")
    assert "chunk of 4 vectors" in failure.hint


def test_sorted_dimensionality():
    def cd(vectors):
        return ref.compute_dimensionality(vectors).sort(dim=-1, descending=True).values

    failure = assert_fails(checks.test_compute_dimensionality, cd, "permuted")
    assert "descending" in failure.message
