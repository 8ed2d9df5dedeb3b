"""quantile_examples: the groups a band rule picks, and whether a learner's output is those groups.

Shared by the quantile readings (`part6b_circuits_hints`, `part6b_circuits_band_readings`): each builds the groups a
particular slip would return with these helpers and compares them with the learner's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor


def group_values(group: Any) -> Tensor:
    return torch.as_tensor(group[0]).detach().double().flatten().cpu()


def member_bands(flat: Tensor, k: int, n_bands: int, top: float, member: Callable) -> list[Tensor]:
    """The k values of `flat` closest to each band's middle, highest band first; member(values, lo, hi, j) says
    which lie in band j."""
    groups = []
    for j in range(n_bands):
        lo, hi = top * (n_bands - j - 1) / n_bands, top * (n_bands - j) / n_bands
        vals = flat[member(flat, lo, hi, j)]
        groups.append(vals[(vals - (lo + hi) / 2).abs().argsort()[:k]].sort(descending=True).values)
    return groups


def same_bands(out: Any, bands: list[Tensor]) -> bool:
    got = [group_values(g) for g in out]
    return len(got) == len(bands) and all(
        a.shape == b.shape and torch.allclose(a, b) for a, b in zip(got, bands, strict=True)
    )


def without_position_zero(acts: Tensor) -> Tensor:
    body = acts.detach().double().cpu().clone()  # position 0 (BOS) is no example
    body[:, 0] = 0
    return body


def ranked_bands(flat: Tensor, top: float, k: int, n_bands: int, middle: Callable | None) -> list[Tensor]:
    """The k in-band values closest to middle(lo, hi) in each band (the k largest when middle is None)."""
    groups = []
    for j in range(n_bands):
        lo, hi = top * (n_bands - j - 1) / n_bands, top * (n_bands - j) / n_bands
        vals = flat[(flat > lo) & (flat <= hi)]
        order = (-vals).argsort() if middle is None else (vals - middle(lo, hi)).abs().argsort()
        groups.append(vals[order[:k]].sort(descending=True).values)
    return groups
