"""Present values ordered along the feature axis (sorted, or each built from its neighbour's).

Every feature's value is its own independent draw from one continuous law, so where two features a < b are both
present, a's value is the larger in half of the examples. A batch whose values were sorted along the features
(`torch.rand(...).sort(-1)`) has a's value the larger in (nearly) all of them, or in none; this names that order,
for any exercise (with or without pairs) whose per-feature value means already failed.
"""

from __future__ import annotations

import torch
from torch import Tensor

from tests.checking import fail
from tests.part1_superposition_probes import rate_tolerance

MIN_BOTH = 100  # examples with both features present before a pair of features is judged


def _larger_shares(batch: Tensor, present: Tensor) -> list[tuple[int, int, float, int]]:
    """(a, b, share of the examples with both present where a's value > b's, their count) for every a < b whose
    share is outside 1/2 ± rate_tolerance(m, 1/2) (the Bernstein bound at DELTA; ties are left out)."""
    out = []
    n_feats = batch.shape[-1]
    for a in range(n_feats):
        for b in range(a + 1, n_feats):
            both = present[..., a] & present[..., b]
            x, y = batch[..., a][both], batch[..., b][both]
            untied = x != y
            m = int(untied.sum())
            if m < MIN_BOTH:
                continue
            share = float((x[untied] > y[untied]).double().mean())
            if abs(share - 0.5) > float(rate_tolerance(m, 0.5)):
                out.append((a, b, share, m))
    return out


def value_order_failure(batch: Tensor, present: Tensor, message: str) -> None:
    """Fails (code values_ordered) when, for every judged pair of features a < b, a's value is the larger in at
    least 99% of the examples with both present, or in at most 1% of them: one order along the whole axis (a sort,
    a cumulative max). Values scaled by a per-feature table shift the shares too, but not every pair to an extreme
    unless the table's ratios are extreme; `message` says what failed."""
    if batch.ndim < 2 or present.shape != batch.shape:
        return
    shares = _larger_shares(batch, present)
    n_feats = batch.shape[-1]
    judged = sum(
        int((present[..., a] & present[..., b]).sum()) >= MIN_BOTH
        for a in range(n_feats)
        for b in range(a + 1, n_feats)
    )
    if not shares or len(shares) != judged:
        return
    if not (all(s[2] >= 0.99 for s in shares) or all(s[2] <= 0.01 for s in shares)):
        return
    up = shares[0][2] <= 0.01
    a, b, share, m = max(shares, key=lambda s: abs(s[2] - 0.5))
    trend = "increase" if up else "decrease"
    dims = tuple(range(batch.ndim - 1))
    sums = torch.where(present, batch, 0.0).double().sum(dims)
    means = sums / present.double().sum(dims).clamp_min(1)
    fail(
        message + f"; the present values {trend} along the feature axis: where features {a} and {b} are both present,"
        f" feature {a}'s value is the larger in {100 * share:.1f}% of the {m} examples (independent draws: 50%), and "
        f"the mean present value per feature is {', '.join(f'{v:.2f}' for v in means.tolist())}",
        "the values are ordered across features: sorted along the feature axis (torch.sort / .sort(-1) on the "
        "values), or each built from its neighbour's (a cumulative max or sum)? Each feature's value is its own "
        "independent draw: don't sort or reorder the values along the feature axis",
        code="values_ordered",
    )
