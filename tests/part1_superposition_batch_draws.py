"""Two more independence statistics along the batch axis of a generator's fresh batch (a [n inst units] tensor).

* presence counts: in a column (inst, unit) the number of present examples is Binomial(n, p), so it scatters by
  sqrt(n p (1 - p)) around n p. Presence decided by a rank or a count (exactly round(p · n) examples per column,
  e.g. `rand.argsort(0) < p * n`) puts every column within 1/2 of n p. With d the deviations and v the variances,
  x = Σ (|d| + 1)² / v over k independent columns (the +1 covers the counts' discreteness) is at least the chi-square
  statistic, and P(χ²_k ≤ x) ≤ (x/2)^(k/2) / Γ(k/2 + 1); fail when that bound is below DELTA. Only columns that are
  independent of each other count (the first member of each pair in a paired block), and only with v ≥ MIN_VAR.
* lagged neighbours: the value of unit c in example t against the value of unit c ∓ 1 in example t - 1, over the
  entries present in both. Every example is an independent draw, so (a - 1/2)(b - 1/2) has mean 0 given the earlier
  examples: summed per example, a martingale whose steps have range K/2 (K = inst · (units - 1) terms, each in
  [-1/4, 1/4]) and variance (terms that step)/144; Freedman's inequality gives the Bernstein tolerance at DELTA.
  A pair's second value taken from the first member's value in the previous example (`roll(1, 0)`) gives 1/12.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from tests.checking import bernstein_tolerance, fail
from tests.part1_superposition_probes import DELTA

MIN_VAR = 50.0  # a column's count variance n p (1 - p) before it is judged


def presence_count_failure(batch: Tensor, p: Tensor, what: str, paired: bool) -> None:
    """Fails (presence_count_fixed) when the per-column presence counts of `batch` sit too close to n · p."""
    present = batch.detach().cpu() != 0
    n = present.shape[0]
    p = p.detach().double().cpu()
    if paired:
        present = present[..., 0::2]  # p is [inst pairs]: the first member of each pair, one column a pair
    if tuple(present.shape[1:]) != tuple(p.shape):
        return
    counts = present.double().sum(0)
    var = n * p * (1 - p)
    keep = var >= MIN_VAR
    k = int(keep.sum())
    if k < 4:
        return
    d = (counts - n * p)[keep]
    x = float((((d.abs() + 1) ** 2) / var[keep]).sum())
    log_bound = (k / 2) * math.log(x / 2) - math.lgamma(k / 2 + 1)
    if log_bound >= math.log(DELTA):
        return
    worst = float((d.abs() / var[keep].sqrt()).max())
    fail(
        f"{what}: the number of present examples in each (inst, {'pair' if paired else 'feature'}) is within "
        f"{float(d.abs().max()):.1f} of n · p in all {k} columns judged (at most {worst:.2f} standard deviations); "
        "independent draws per example scatter by sqrt(n p (1 - p)) (chance of columns this regular < 1e-10)",
        "presence is decided by a rank or a count, not by an independent draw per example: e.g. exactly "
        "round(p · batch_size) examples present per column (a random permutation / argsort / topk over the batch "
        "axis), so a batch of 1 is never (or always) present. Draw each entry on its own: torch.rand(...) < p",
        code="presence_count_fixed",
    )


def lagged_neighbour_failure(batch: Tensor, what: str, unit: str = "feature") -> None:
    """Fails (values_from_previous_example) when a unit's present value follows its neighbour's present value in the
    previous example."""
    v = batch.detach().double().cpu()
    if v.ndim != 3 or v.shape[0] < 2 or v.shape[2] < 2:
        return
    present = v != 0
    d = torch.where(present, v - 0.5, 0.0)
    n_steps, K = v.shape[0] - 1, v.shape[1] * (v.shape[2] - 1)
    for shift, a, b, pa, pb, label in (
        (1, d[1:, :, 1:], d[:-1, :, :-1], present[1:, :, 1:], present[:-1, :, :-1], "previous"),
        (-1, d[1:, :, :-1], d[:-1, :, 1:], present[1:, :, :-1], present[:-1, :, 1:], "next"),
    ):
        both = pa & pb
        count = int(both.sum())
        if count < 100:
            continue
        total = float((a * b).sum())
        tol = bernstein_tolerance(n_steps, count / n_steps / 144, K / 2, DELTA)
        if abs(total / n_steps) <= tol:
            continue
        mean = total / count
        equal = float((a == b)[both].double().mean())
        seen = f"; {equal:.0%} of them are exactly equal" if equal > 0.01 else ""
        fail(
            f"{what}: a present value of {unit} c in example t is correlated with the present value of the {label} "
            f"{unit} (c {'-' if shift == 1 else '+'} 1) in example t - 1 (mean of (a - 1/2)(b - 1/2) over {count} "
            f"such entries: {mean:+.4f}, independent examples give 0{seen})",
            "a value is taken from the previous example (e.g. one pair member's value filled with the other "
            "member's values rolled or shifted along the batch axis, roll(1, 0) or [:-1]): every example is its own "
            "independent draw, so draw each value fresh with the full shape [batch, inst, ...]",
            code="values_from_previous_example",
        )
