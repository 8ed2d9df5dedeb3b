"""Proofs for part 5b's checkers: batch_topk's indices reordered apart from their values (the right entries kept,
their values shuffled among them), never read as a layout slip."""

from __future__ import annotations

import einops
import torch

import tests.part5b_absorption as checks
from tests.proving import assert_fails


def test_batch_topk_sorted_indices():
    def batch_topk(pre, k):
        batch = pre.shape[0]
        flat = einops.rearrange(pre, "b i s -> i (b s)")
        top = flat.topk(k * batch, dim=-1)
        kept = torch.zeros_like(flat).scatter(-1, top.indices.sort(dim=-1).values, top.values)
        return einops.rearrange(kept, "i (b s) -> b i s", b=batch)

    assert_fails(checks.test_batch_topk, batch_topk, "values_shuffled")
