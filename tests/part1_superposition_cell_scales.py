"""Generators: the reading of present values whose law differs from cell to cell, after the named families failed.

A per-cell factor is named only when it is read back: every cell with enough present values, divided by its own
factor s = max|v| / max(|low|, |high|), fits U[low, high] within the Kolmogorov-Smirnov bound
sqrt(ln(2/δ) / 2n) + 0.01, and the factors differ between cells. Otherwise the hint states what was observed (the
spread of the cell means and where) and names no cause.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from tests.checking import fail
from tests.part1_superposition_probes import DELTA


def _fits_uniform(v: Tensor, low: float, high: float) -> bool:
    """True if the sample v fits U[low, high] within the DKW bound."""
    v = v.sort().values
    n = v.numel()
    eps = math.sqrt(math.log(2 / DELTA) / (2 * n)) + 0.01
    ecdf = torch.arange(1, n + 1, dtype=torch.float64) / n
    return float((ecdf - ((v - low) / (high - low)).clamp(0, 1)).abs().max()) < eps


def cell_scales(batch: Tensor, present: Tensor, low: float, high: float) -> Tensor | None:
    """The per-cell factors s [inst units] (NaN where too few values) if every tested cell is U[low, high] times s."""
    counts = present.sum(0)
    bound = max(abs(low), abs(high))
    scales = torch.full(counts.shape, float("nan"), dtype=torch.float64)
    cells = (counts >= 50).nonzero().tolist()
    if len(cells) < 2:
        return None
    for a, c in cells:
        v = batch[:, a, c][present[:, a, c]].double().cpu()
        s = float(v.abs().max()) / bound
        if s <= 0 or not _fits_uniform(v / s, low, high):
            return None
        scales[a, c] = s
    tested = scales[~scales.isnan()]
    return scales if float(tested.max() / tested.min()) > 1.05 else None


def cell_law_failure(
    batch: Tensor, present: Tensor, means: Tensor, counts: Tensor, message: str, lh, unit: str
) -> None:
    """Fail with values_depend_on_cell: a read-back per-cell factor, or else the observed spread of the cell means."""
    low, high = lh
    law = f"U[{low:g}, {high:g}]"
    scales = cell_scales(batch, present, low, high)
    if scales is not None:
        i, j = divmod(int(torch.nan_to_num(scales, nan=1.0).sub(1).abs().argmax()), scales.shape[1])
        tested = scales[~scales.isnan()]
        fail(
            message,
            f"each cell's values are {law} times a factor of its own (read back: inst {i}, {unit} {j} is {law} times "
            f"{float(scales[i, j]):.3g}; factors from {float(tested.min()):.3g} to {float(tested.max()):.3g}): the "
            f"values are scaled by a per-cell table (such as p or self.importance). Every cell should hold {law}",
            code="values_depend_on_cell",
        )
    seen = counts > 0
    lo = int(torch.where(seen, means, math.inf).argmin())
    hi = int(torch.where(seen, means, -math.inf).argmax())
    at = lambda k: f"inst {k // means.shape[1]}, {unit} {k % means.shape[1]}"
    fail(
        message,
        f"the values' law differs from cell to cell: present-value means range from {float(means.flatten()[lo]):.3f} "
        f"({at(lo)}) to {float(means.flatten()[hi]):.3f} ({at(hi)}), where every cell should have mean "
        f"{(low + high) / 2:g}; no per-cell factor reproduces them (each cell's values divided by one number are not "
        f"{law}). Every cell must hold the same {law} law, drawn independently of p, of presence and of the other "
        "cells",
        code="values_depend_on_cell",
    )
