"""Proofs for part 5b's diagnoses added after the fresh40 held-out measurement: batch_topk cutting every instance
at one shared value (top.values.min() over all instances), and matryoshka_loss summing the prefix
reconstructions before one loss, or comparing each prefix with the previous prefix's reconstruction, are named."""

from __future__ import annotations

import einops
import torch

import tests.part5b_absorption as checks
from tests.proving import assert_fails


def _shared_cut(reduce):
    def batch_topk(pre, k):
        batch = pre.shape[0]
        flat = einops.rearrange(pre, "batch inst d_sae -> inst (batch d_sae)")
        cut = reduce(flat.topk(k * batch, dim=-1).values)
        kept = torch.where(flat >= cut, flat, torch.zeros_like(flat))
        return einops.rearrange(kept, "inst (batch d_sae) -> batch inst d_sae", batch=batch)

    return batch_topk


def test_cut_shared_over_instances_is_named():
    err = assert_fails(checks.test_batch_topk, _shared_cut(lambda v: v.min()), "cut_shared_over_instances")
    assert "smallest" in err.message


def _prefix_loop(kind):
    def matryoshka_loss(acts, W_dec_normalized, b_dec, h, prefix_sizes):
        total, summed, previous = 0, 0, h
        for m in prefix_sizes:
            rec = einops.einsum(acts[..., :m], W_dec_normalized[:, :m], "b i m, i m d -> b i d") + b_dec
            summed = summed + rec
            total = total + (rec - previous).pow(2).mean(-1)
            previous = rec if kind == "previous" else h
        if kind == "summed":
            return (summed - len(prefix_sizes) * h).pow(2).mean(-1)
        return total

    return matryoshka_loss


def test_reconstructions_summed_first_is_named():
    err = assert_fails(checks.test_matryoshka_loss, _prefix_loop("summed"), "reconstructions_summed")
    assert "summed first" in err.hint


def test_previous_prefix_target_is_named():
    err = assert_fails(checks.test_matryoshka_loss, _prefix_loop("previous"), "previous_prefix_target")
    assert "PREVIOUS" in err.hint
