"""Readings for present values that are not fresh independent draws, shared by parts 1 and 2's generator checkers.

* Repeated values: a present value (up to sign) reappearing in another entry, most of them at one batch distance d
  (d = 0: inside one example, across instances or features; d > 0: example b and b + d, e.g. a half of the batch
  negated into the other). Chance repeats of float32 draws fall at scattered distances and cells: the reading needs
  at least max(100, 1% of the values) repeats at one distance, far above the expected count of chance repeats at a
  given distance (under n² / (2^23 · batch) for n values on a 2^-23 grid).
* Values tied to a neighbour's presence: value < p' exactly when the neighbouring entry (the previous or next
  example, instance or feature, with probability p') is present, i.e. the value is the uniform that decided the
  neighbour's presence. Independent draws agree at a rate p'² + (1 - p')² < 1 per entry; the reading needs 99% of
  at least 1000 entries, which a right generator reaches with probability below e^(-2·1000·0.1²) (Hoeffding).
"""

from __future__ import annotations

import torch
from torch import Tensor

from tests.checking import fail


def repeated_values_failure(batch: Tensor, what: str, signed: bool = False) -> None:
    """Present values (|value| when `signed`) repeated across entries, most at one batch distance."""
    b = batch.detach().cpu()
    present = b != 0
    idx = present.nonzero()
    vals = b[present].abs() if signed else b[present]
    n = vals.numel()
    if n < 1000:
        return
    ordered, order = vals.sort()
    eq = ordered[1:] == ordered[:-1]
    if int(eq.sum()) < max(100, n // 100):
        return
    i1, i2 = order[:-1][eq], order[1:][eq]
    dist = (idx[i2, 0] - idx[i1, 0]).abs()
    d, count = (int(t) for t in torch.mode(dist))
    at_d = dist == d
    count = int(at_d.sum())
    if count < max(100, n // 100):
        return
    same_cell = bool((idx[i1[at_d], 1:] == idx[i2[at_d], 1:]).all(-1).double().mean() > 0.9)
    opposite = float((b[present][i1[at_d]] * b[present][i2[at_d]] < 0).double().mean()) if signed else 0.0
    sign = " with the opposite sign" if opposite > 0.9 else ""
    if d == 0:
        where = "inside one example: entries of other instances or features carry the same value"
        fix = "draw one value per (example, instance, feature): a tensor of the full shape [batch, inst, feats]"
    else:
        where = (
            f"in another example {d} rows away{' (the same instance and feature)' if same_cell else ''}{sign}: "
            f"example b and example b + {d} are paired"
        )
        fix = "every example is an independent draw: no negated, shifted or copied halves of the batch"
    fail(
        f"{what}: {count} of the {n} present values reappear{' (up to sign)' if signed else ''} {where}; "
        "independent float32 draws repeat only by chance, at scattered places",
        f"the values are not fresh independent draws: {fix}",
        code="values_repeated",
    )


def neighbour_presence_failure(batch: Tensor, p: Tensor, what: str) -> None:
    """Present U[0, 1] values that are the presence uniform of a neighbouring entry (value < p' iff it is present)."""
    b = batch.detach().cpu().double()
    present = b != 0
    if present.ndim != 3 or tuple(p.shape) != tuple(b.shape[1:]) or int(present.sum()) < 1000:
        return
    pp = p.detach().cpu().double().expand_as(b)
    axes = {0: "example", 1: "instance", 2: "feature"}
    for dim, shift in ((0, 1), (0, -1), (1, 1), (1, -1), (2, 1), (2, -1)):
        if b.shape[dim] < 2:
            continue
        other, p_other = present.roll(shift, dim), pp.roll(shift, dim)
        low, high = b < p_other, b > 1 - p_other
        for side, below in (("below", low), ("above 1 -", high)):
            agree = (below == other)[present]
            if float(agree.double().mean()) >= 0.99:
                which = "previous" if shift == 1 else "next"
                fail(
                    f"{what}: a present value lies {side} p exactly when the {which} {axes[dim]}'s entry is present "
                    f"({float(agree.double().mean()):.1%} of {agree.numel()} present entries)",
                    f"the values reuse the uniform that decided the {which} {axes[dim]}'s presence (a roll or shift "
                    f"of the presence draw along the {axes[dim]} axis): draw the values with their own torch.rand "
                    "call, independent of every presence draw",
                    code="values_tied_to_presence",
                )
