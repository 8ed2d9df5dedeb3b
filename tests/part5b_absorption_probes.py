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


def other_momentum(before: Tensor, after: Tensor, right: Tensor, m: float, what: str) -> None:
    """The threshold moved towards the right target (the minimum kept activation) by one common factor other than
    THRESHOLD_MOMENTUM: name that factor (e.g. (threshold + min_kept) / 2 is an EMA with factor 0.5).

    The implied factor per instance is change / (min_kept - threshold), where min_kept - threshold =
    (right - before) / m; the catalogued factors (1 - m: the weights swapped, 1: no EMA, 0: not updated) are left
    to the catalogue's hints."""
    if after.shape != before.shape or not torch.isfinite(after).all():
        return
    step = (right - before).double() / m  # min_kept - threshold, per instance (0 where nothing was kept)
    moved = step.abs() > 1e-3
    if int(moved.sum()) < 2:
        return
    factor = (after - before).double()[moved] / step[moved]
    f = float(factor.mean())
    # 1e-3 relative: float32 rounding of threshold + f·step is ~1e-7 of values ~1, against steps >= 1e-3
    if not torch.allclose(factor, torch.full_like(factor, f), rtol=1e-3, atol=1e-4):
        return
    if any(abs(f - c) <= 1e-3 * max(abs(c), 1e-3) for c in (m, 1 - m, 1.0, 0.0)):
        return
    fail(
        f"the change of self.threshold {what} is {f:.4g} × (min kept − threshold) at every instance, expected "
        f"THRESHOLD_MOMENTUM = {m:g} × (min kept − threshold)",
        f"your update is an EMA step with factor {f:.4g}"
        + (" (the average (threshold + min_kept) / 2)" if abs(f - 0.5) < 1e-3 else "")
        + f": use the class's THRESHOLD_MOMENTUM (self.THRESHOLD_MOMENTUM = {m:g}), threshold ← threshold + "
        "THRESHOLD_MOMENTUM · (min_kept − threshold)",
        code="momentum",
    )


def other_k(pre: Tensor, k: int, batch_topk: Any) -> list[tuple[str, str, Tensor]]:
    """batch_topk with another per-example budget than cfg.k (a hard-coded k, or another config field)."""
    return [
        (
            "topk_budget",
            f"that is batch_topk(pre, k={other}): {other}·batch entries kept per instance, expected k = cfg.k = {k} "
            "(a hard-coded k, or another field than self.cfg.k?)",
            batch_topk(pre, other),
        )
        for other in range(1, 2 * k + 2)
        if other != k
    ]
