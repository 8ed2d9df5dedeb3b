"""What a learner's EMA update of BatchTopKToySAE.threshold did (`tests.part5b_absorption`): several EMA steps in
one training call (one per example, one per kept activation, or k steps towards the batch minimum), and a target
read from the top-k cut (the k·batch-th largest relu(pre), 0 where fewer are positive) instead of the smallest
positive kept activation. And a training-mode output that is the pre-activations themselves (the top-k result
never used)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from solutions import part5b_absorption as ref
from tests.checking import fail


def cut_value_candidates(th: Tensor, pre: Tensor, k: int, m: float) -> list[tuple[str, str, Tensor]]:
    """The update towards the k·batch-th largest relu(pre) of each instance (the value at the top-k cut, kept
    zeros included): the smallest positive kept activation where at least k·batch entries are positive, 0 where
    fewer are (there batch_topk keeps zeros), and no instance skipped. None where every instance has k·batch
    positive entries: then the cut IS the smallest positive kept activation."""
    flat = pre.clamp_min(0).transpose(0, 1).flatten(1)  # [inst (batch d_sae)]
    cut = flat.topk(min(k * pre.shape[0], flat.shape[1]), dim=-1).values[:, -1]
    short = ((flat > 0).sum(-1) < k * pre.shape[0]).nonzero().flatten().tolist()
    if not short:
        return []
    cause = (
        "batch_topk kept zeros there, e.g. topk(...).values[..., -1] or a min over every kept slot). The target is "
        "the smallest POSITIVE kept activation, torch.where(acts > 0, acts, inf).amin(dim=(0, 2))"
    )
    if not (flat[short] > 0).any():  # nothing positive there: the minimum over the positives is inf, and 0 if filled
        cause = (
            "nothing positive was kept there, so every one of these gives 0: topk(...).values[..., -1], a min over "
            "every kept slot, or the inf of the minimum over the positives replaced by 0 (torch.nan_to_num(m, "
            "posinf=0), a torch.where(isinf) fill) with no skip). The target is the smallest POSITIVE kept "
            "activation, torch.where(acts > 0, acts, inf).amin(dim=(0, 2)); don't replace its inf"
        )
    return [
        (
            "threshold_cut_value",
            "the threshold moved towards the value at the top-k cut, the k·batch-th largest relu(pre) of each "
            f"instance (here {[round(v, 4) for v in cut.tolist()]}), which is 0 where fewer than k·batch entries are "
            f"positive (instance(s) {short}: {cause}, and an instance that kept nothing positive keeps its threshold "
            "(torch.where(has_any, updated, self.threshold))",
            th + m * (cut - th),
        )
    ]


def _stepped(before: Tensor, targets: Tensor, m: float) -> Tensor:
    """One EMA step per row of targets [steps inst], in order; an inf target (nothing kept) leaves it as it is."""
    th = before.clone()
    for t in targets:
        th = torch.where(torch.isfinite(t), th + m * (t - th), th)
    return th


def repeated_steps(before: Tensor, after: Tensor, acts: Tensor, m: float, what: str) -> None:
    """Names an update made of several EMA steps in one training call: one per example towards that example's
    smallest kept activation (in batch order or reversed), one per kept positive activation, or n ≥ 2 steps towards
    the batch minimum (after = min + (1 - m)^n (before - min), the same whole n in every instance that moved)."""
    before, after, acts = (t.detach().double().cpu() for t in (before, after, acts))
    positive = acts > 0
    per_example = torch.where(positive, acts, torch.inf).amin(-1)  # [batch inst]
    entries = torch.where(positive, acts, torch.inf).permute(0, 2, 1).flatten(0, 1)  # [(batch d_sae) inst]
    kinds = [
        (per_example, "one step per example towards that example's smallest kept activation, in batch order"),
        (per_example.flip(0), "one step per example towards that example's smallest kept activation, last first"),
        (entries, "one step per kept positive activation (towards each of them in turn)"),
    ]
    close = lambda x: torch.allclose(x, after, rtol=1e-4, atol=1e-6)
    for targets, how in kinds:
        if close(_stepped(before, targets, m)) and not close(_stepped(before, targets.amin(0, keepdim=True), m)):
            named_steps(what, how, int(torch.isfinite(targets).sum(0).max()))
    low = per_example.amin(0)  # [inst]
    moved = torch.isfinite(low) & ((after - before).abs() > 1e-9) & ((before - low).abs() > 1e-9)
    ratio = (after - low) / (before - low)
    if not moved.any() or not (ratio[moved] > 0).all() or not torch.equal(after[~moved], before[~moved]):
        return
    steps = (ratio[moved].log() / math.log(1 - m)).tolist()
    n = round(steps[0])
    if n >= 2 and all(abs(s - n) < 0.05 for s in steps):
        named_steps(
            what,
            f"{n} steps towards the batch's smallest kept activation (after = min + (1 - m)^{n}·(before - min))",
            n,
        )


def named_steps(what: str, how: str, n: int) -> None:
    fail(
        f"the change of self.threshold {what} is exactly several EMA steps in one training call: {how} (up to {n} "
        "steps here)",
        "the EMA is stepped ONCE per training call (per batch): threshold ← threshold + THRESHOLD_MOMENTUM · "
        "(min_kept − threshold), with min_kept the smallest positive kept activation over the whole batch and all "
        "latents of the instance, torch.where(acts > 0, acts, inf).amin(dim=(0, 2)): no loop over examples or "
        "entries around the update",
        code="threshold_steps_per_batch",
    )


def factor_of_repeated_steps(f: float, m: float, what: str) -> None:
    """An EMA factor f that is exactly 1 - (1 - m)^n for a whole n ≥ 2 (to 1e-3 relative, the tolerance the
    factor was measured with): n steps of THRESHOLD_MOMENTUM towards the same target in one call. n stops at 32,
    above the checker's batch sizes (one step per example at most): a larger n would name common factors (with
    m = 0.01, n = 69 is 0.5 to 3e-4)."""
    for n in range(2, 33):
        if abs(f - (1 - (1 - m) ** n)) <= 1e-3 * f:
            named_steps(
                what, f"{n} steps towards the batch's smallest kept activation (factor 1 - (1 - m)^{n} = {f:.4g})", n
            )
        if 1 - (1 - m) ** n > f * (1 + 1e-3):
            return


def recording(fn: Callable, calls: list) -> Callable:
    """`fn` (the batch_topk given to the learner's encode), noting the k of every call in `calls`."""

    def recorded(pre: Any, k: Any) -> Any:
        calls.append(k)
        return fn(pre, k)

    return recorded


def topk_unused(acts: Tensor, expected: Tensor, pre: Tensor, raw: Tensor, k: int, calls: list) -> None:
    """Training-mode acts equal to relu(pre) (`pre`) or to the pre-activations before the ReLU (`raw`): nothing was
    cut. Named before the other budgets are tried: a batch_topk with k large enough to keep every positive entry
    gives the same relu(pre), so that is listed as the other cause unless batch_topk was seen called with cfg.k."""
    if torch.allclose(acts, expected, rtol=1e-4, atol=1e-5):
        return
    for value, name in ((pre, "relu(pre)"), (raw, "pre before the ReLU")):
        if acts.shape != value.shape or not torch.allclose(acts, value, rtol=1e-5, atol=1e-6):
            continue
        batch = pre.shape[0]
        positives = (pre > 0).transpose(0, 1).flatten(1).sum(-1)  # [inst]
        enough = max(math.ceil(int(n) / batch) for n in positives)
        what = f"encode(h) in training mode returned {name} itself: nothing was cut (expected {k}·batch entries kept)"
        unused = (
            "the top-k result is never used: return batch_topk's output (acts = batch_topk(relu(pre), self.cfg.k); "
            "return acts), not the pre-activations it was computed from"
        )
        if k in calls:
            fail(what + f"; batch_topk was called with k = cfg.k = {k}", unused, code="topk_unused")
        fail(
            what,
            f"{unused}. Or a budget so large that every positive entry is kept (k ≥ {enough} here, expected "
            f"cfg.k = {k}: a hard-coded k, or another field than self.cfg.k?)",
            code="topk_unused",
        )


def silent_instance_moved(before: Tensor, after: Tensor, right: Tensor, kept: Tensor | None, what: str) -> None:
    """Fail (code silent_instance_moved) when the threshold is right in every instance that kept a positive
    activation and moved in one that kept none (round BA: a finite fill such as 1e9 or 0 where torch.inf belongs, or
    no `has_any` guard, makes that instance's minimum a fill value; inf itself is named by threshold_inf)."""
    if kept is None or after.shape != before.shape or not torch.isfinite(after).all():
        return
    silent = ~(kept > 0).any(0).any(-1)  # [inst]
    if not silent.any() or silent.all():
        return
    close = torch.isclose(after, right, rtol=1e-5, atol=1e-7)
    m = ref.BatchTopKToySAE.THRESHOLD_MOMENTUM
    target = before[silent] + (after[silent] - before[silent]) / m  # where the silent instances moved towards
    # reset to 0, or moved towards 0: the catalogue's threshold_reset and threshold_cut_value name those
    reset = bool((after[silent] == 0).all() or (target.abs() < 1e-3).all())
    if close[~silent].all() and not close[silent].all() and not reset:
        i = int((silent & ~close).nonzero()[0])
        fail(
            f"self.threshold {what}: instance {i} kept no positive activation, yet its threshold moved from "
            f"{float(before[i]):.4g} to {float(after[i]):.4g} (every other instance is right)",
            "an instance that kept nothing positive has no smallest kept activation: leave its threshold as it is "
            "(torch.where(has_any, updated, self.threshold)). A fill value for its minimum (1e9, 0, a large number "
            "where torch.inf belongs) still moves it",
            code="silent_instance_moved",
        )
