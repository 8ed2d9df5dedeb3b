"""quantile_examples whose groups hold out-of-band examples before in-band ones: two slips give that on the
checker's inputs (every out-of-band example ties, so the values cannot tell them apart): distances outside the band
masked with 0 and ranked with topk(largest=False), or masked with inf and ranked with topk's default largest=True.
A one-sequence probe with one band, whose only out-of-band example is BOS, reads back which: the first tops the
group up with the in-band examples CLOSEST to the middle, the second with the FARTHEST."""

from __future__ import annotations

from collections.abc import Callable

import torch

from tests.checking import fail

_SEEN = "the groups hold examples outside their bands, chosen before any inside: the out-of-band examples win"
_PROBE = [5.0, 0.35, 0.7, 1.6, 2.2, 2.5, 3.1, 3.9, 4.2, 4.5]  # BOS 5.0; band (0, 4.5], middle 2.25, distances distinct


def _group(largest: bool, masked: float) -> list[float]:
    flat = torch.tensor(_PROBE, dtype=torch.float64)
    flat[0] = 0
    in_band = flat > 0
    score = torch.where(in_band, (flat - 2.25).abs(), torch.full_like(flat, masked))
    chosen = score.topk(min(3, int(in_band.sum())), largest=largest).indices
    return sorted(flat[chosen].tolist())


def _same(got: list[float] | None, want: list[float]) -> bool:
    return got is not None and len(got) == len(want) and torch.allclose(torch.tensor(got), torch.tensor(want))


def out_of_band_cause(impl: Callable, device: torch.device) -> None:
    """Always fails: names the mask that the probe reads back, or lists both when it reads back neither."""
    acts = torch.tensor([_PROBE], device=device)
    try:
        got = sorted(float(v) for v in impl(acts.clone(), 3, 1)[0][0].detach().double().cpu().flatten())
    except Exception:  # a probe the learner's code cannot run reads back nothing
        got = None
    if _same(got, _group(True, float("inf"))):
        fail(
            _SEEN + "; on a one-band probe (BOS the only example out of band) the group is BOS then the in-band "
            "examples FARTHEST from the middle: the distances were ranked largest first",
            "topk takes the largest by default: pass largest=False (distance.topk(n, largest=False)) so that the "
            "closest to the middle win and the inf-masked out-of-band examples lose",
            code="topk_largest",
        )
    if _same(got, _group(False, 0.0)):
        fail(
            _SEEN + "; on a one-band probe (BOS the only example out of band) the group is BOS then the in-band "
            "examples closest to the middle: the out-of-band distances were masked with a small value",
            "the distances outside the band were masked with 0 (or anything smaller than an in-band distance), so "
            "topk(largest=False) picks them first: mask them with float('inf') so that they lose",
            code="mask_zero",
        )
    fail(
        _SEEN,
        "out-of-band distances masked with 0 and ranked with topk(largest=False), or masked with inf and ranked with "
        "topk's default (largest=True), both do this: mask with float('inf') and pass largest=False",
        code="mask_zero",
    )
