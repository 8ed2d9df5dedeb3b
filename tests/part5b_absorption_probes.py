"""Part 5b's probes on a learner's BatchTopK SAE (moved out of part5b_absorption_diagnosis for its size)."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import Tensor

from tests.checking import fail


def where_swapped(sae: Any, before: Tensor, right: Tensor, batch: Tensor, b_dec0: Tensor) -> None:
    """When a training call left self.threshold where it was but it should have moved, a probe on a copy: a batch in
    which only instance 0 keeps nothing (h = b_dec there). If exactly that instance's threshold moves, the two
    branches of torch.where(has_any, updated, self.threshold) are swapped."""
    th = sae.threshold.detach()
    if th.shape != before.shape or not torch.equal(th, before) or torch.equal(right, before):
        return
    probe = copy.deepcopy(sae)
    silent = batch.clone()
    silent[:, 0] = b_dec0
    try:
        probe.encode(silent)
    except Exception:
        return
    moved = probe.threshold.detach() != before  # NaN and inf count as moved
    if bool(moved[0]) and not bool(moved[1:].any()):
        fail(
            "self.threshold kept its old value after a training call in which every instance kept positive "
            f"activations, and moved (to {probe.threshold[0].item():.4g}) at instance 0 only in a batch where "
            "instance 0 alone kept nothing",
            "the branches of torch.where are swapped: torch.where(has_any, updated, self.threshold) moves the "
            "instances that kept something and leaves the others",
            code="where_swapped",
        )


def best_kept_too(out: Tensor, pre: Tensor, expected: Tensor, what: str) -> None:
    """The top k·batch of each instance, plus each example's largest latent kept as well (at least one per
    example): more than k·batch entries wherever an example's best is outside the budget."""
    best = pre == pre.amax(-1, keepdim=True)
    union = torch.where((expected != 0) | best, pre, torch.zeros_like(pre))
    if torch.equal(union, expected) or not torch.equal(out, union):
        return
    extra = int((best & (expected == 0)).sum())
    fail(
        f"{what} keeps the top k·batch of each instance plus {extra} more: each example's largest latent, kept "
        "even where it falls outside the budget",
        "keep exactly the k·batch largest entries of each instance, over all its examples and latents together: "
        "an example may keep no latent at all (no guaranteed one per example)",
        code="best_per_example",
    )


def matryoshka_fresh13(acts: Tensor, W: Tensor, b: Tensor, h: Tensor, sizes: tuple[int, ...]) -> list:
    """More matryoshka_loss mistakes: one prefix's loss alone (a `return` inside the loop, or the total overwritten),
    the latents after each prefix (acts[..., m:]), the squared error averaged over the instances too."""
    d_sae = acts.shape[-1]
    rec = lambda lo, hi: torch.einsum("bis,isd->bid", acts[..., lo:hi], W[:, lo:hi]) + b
    per = lambda lo, hi: (rec(lo, hi) - h).pow(2).mean(-1)
    rows = [
        (
            "after_prefix",
            "that decodes the latents AFTER each prefix, acts[..., m:] with W_dec[:, m:]: prefix m is the first m "
            "latents, acts[..., :m] with W_dec[:, :m]",
            sum(per(m, d_sae) for m in sizes),
        ),
        (
            "mean_over_instances",
            "each prefix's squared error was averaged over the instances as well as d_in (every instance gets the "
            "same loss): average over d_in only, .mean(-1), keeping [batch inst]",
            sum((rec(0, m) - h).pow(2).mean((-2, -1))[:, None].expand_as(h[..., 0]) for m in sizes),
        ),
    ]
    if len(sizes) > 1:
        rows += [
            (
                "one_prefix_only",
                f"that is the loss of the {which} prefix (m = {m}) alone: "
                + (
                    "a `return` inside the loop returns after the first prefix; "
                    if which == "first"
                    else "the total overwritten in the loop (`total = ...` where `total += ...` was meant)? "
                )
                + "sum the losses of every m in prefix_sizes, then return",
                per(0, m),
            )
            for which, m in (("first", sizes[0]), ("last", sizes[-1]))
        ]
    return rows
