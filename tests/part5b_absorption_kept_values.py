"""batch_topk outputs that keep the right entries with their values moved: each kept value is pre + c (a shift by
one constant per instance, e.g. pre - pre.min() so that every entry is non-negative before the top-k) or pre · c.
Called from `kept_pattern` (tests/part5b_absorption_probes.py) once the output is known to be wrong."""

from __future__ import annotations

import torch
from torch import Tensor

from tests.checking import fail

__all__ = ["kept_values_moved"]


def kept_values_moved(out: Tensor, pre: Tensor, expected: Tensor, what: str) -> None:
    """The right entries kept, each value moved by one constant per instance: pre + c (a shift, e.g. pre - pre.min()
    to make every entry positive before the top-k) or pre · c."""
    kept = expected != 0
    if not torch.equal(out != 0, kept):
        return
    shift = [(out[:, i] - pre[:, i])[kept[:, i]] for i in range(pre.shape[1])]
    scale = [(out[:, i] / pre[:, i])[kept[:, i]] for i in range(pre.shape[1])]
    close = lambda v: bool(v.numel()) and float(v.max() - v.min()) <= 1e-5 * max(1.0, float(v.abs().max()))
    keep = "keep pre's values where they are kept: rank pre itself (topk) and scatter topk's values, or pre * mask"
    if all(close(d) for d in shift) and any(float(d.abs().max()) > 1e-5 for d in shift):
        c = [round(float(d.mean()), 4) for d in shift]
        low = float(-pre.min())
        note = (
            f" (c = -pre.min() = {low:.4g}: a shift that makes every entry non-negative)"
            if all(abs(v - low) < 1e-3 * max(1.0, abs(low)) for v in c)
            else ""
        )
        fail(
            f"{what}: the right entries are kept, but each kept value is pre + c with one c per instance, "
            f"c = {c}{note}",
            keep,
            code="values_shifted",
        )
    if all(close(r) for r in scale) and any(abs(float(r.mean()) - 1) > 1e-5 for r in scale):
        c = [round(float(r.mean()), 4) for r in scale]
        fail(
            f"{what}: the right entries are kept, but each kept value is pre · c, c = {c} per instance",
            keep,
            code="values_scaled",
        )
