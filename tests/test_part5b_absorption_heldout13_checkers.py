"""Proofs for part 5b's checkers: batch_topk's cut taken as the k·batch-th SMALLEST value (kthvalue counts from the
smallest end), matryoshka_loss's error against h normalised per example, and its squared error reduced over the
batch too (one loss per instance, broadcast back), named generically from the loss being constant along batch."""

from __future__ import annotations

import pytest
import torch

import tests.part5b_absorption as checks
from tests.proving import assert_fails


@pytest.mark.parametrize("strict", [False, True])
def test_batch_topk_cut_from_smallest(strict):
    def batch_topk(pre, k):
        B, n_inst, D = pre.shape
        flat = pre.permute(1, 0, 2).reshape(n_inst, B * D)
        cut = flat.kthvalue(k * B, dim=-1).values[:, None]
        keep = flat > cut if strict else flat >= cut
        return torch.where(keep, flat, torch.zeros_like(flat)).reshape(n_inst, B, D).permute(1, 0, 2)

    err = assert_fails(checks.test_batch_topk, batch_topk, "cut_from_smallest")
    assert "SMALLEST" in err.message and "kthvalue" in err.hint


def _matryoshka(bug):
    def matryoshka_loss(acts, W_dec_normalized, b_dec, h, prefix_sizes):
        total = 0
        for m in prefix_sizes:
            rec = torch.einsum("bis,isd->bid", acts[..., :m], W_dec_normalized[:, :m]) + b_dec
            target = h / h.norm(dim=-1, keepdim=True) if bug == "normed" else h
            sq = (rec - target).pow(2)
            if bug == "mean_batch":
                total = total + sq.mean(dim=(0, 2)).expand(h.shape[0], -1)
            elif bug == "sum_batch":
                total = total + sq.mean(-1).sum(0, keepdim=True).expand(h.shape[0], -1)
            else:
                total = total + sq.mean(-1)
        return total

    return matryoshka_loss


def test_matryoshka_target_normalised():
    assert_fails(checks.test_matryoshka_loss, _matryoshka("normed"), "target_normalised")


@pytest.mark.parametrize(("bug", "words"), [("mean_batch", "the mean over the batch"), ("sum_batch", "×")])
def test_matryoshka_batch_reduced(bug, words):
    err = assert_fails(checks.test_matryoshka_loss, _matryoshka(bug), "batch_reduced")
    assert words in err.message and ".mean(-1)" in err.hint
