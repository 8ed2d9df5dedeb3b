"""Reading a wrong output as lower-precision arithmetic: values computed (partly) in bfloat16 or float16.

A `.half()`, `.bfloat16()` or autocast somewhere in the learner's code leaves a fingerprint no other mistake has:
every value is within a few roundings of the right one *relative to its own size* (rounding is relative), and
when the last operation ran in the low dtype, every value lies on that dtype's grid (``x.to(low).to(x.dtype) ==
x``). The relative bound is what separates it from a small absolute slip (an eps added somewhere shifts small
values by far more than their rounding would); the grid is what makes the reading certain.
"""

from __future__ import annotations

import torch
from torch import Tensor

# Unit roundoff (half the spacing at 1) of each low dtype: one rounding moves a value by at most this, relatively.
_UNIT = {torch.bfloat16: 2.0**-8, torch.float16: 2.0**-11}
# The low dtypes by name, coarsest first: a bfloat16 number (8 significant bits) in float16's range is a float16
# number too, so the grid that names the dtype is the coarsest one the values lie on.
LOW_DTYPES = {torch.bfloat16: "bfloat16", torch.float16: "float16"}
# A few chained roundings (a product, a sum, a ReLU, the cast back) stay within this many units, relative to the
# size of the terms; errors beyond it are not rounding.
_ROUNDINGS = 16


def precision_reading(
    actual: Tensor, expected: Tensor, rtol: float, atol: float, grid_only: bool = True
) -> tuple[str, str] | None:
    """(code "low_precision", hint) when `actual` differs from `expected` the way low-precision arithmetic does.

    Fires only when (a) the values differ beyond (rtol, atol) at two or more positions, (b) every position is
    within `_ROUNDINGS` roundings of the low dtype, relative to its own size (with a floor of 1% of the output's
    scale, for values that are sums of larger terms), and (c) for the dtype named, either every value lies on
    its grid (while the expected values mostly don't), or the largest relative error is too big for the next
    finer dtype and the errors go both ways (rounding is unbiased; a small added term is not). Otherwise None:
    a slip the size of rounding is not claimed without that evidence.

    `grid_only` (the default, for the generic diagnosis that runs before a section's own readings) drops the
    second kind of evidence: small random noise (a jitter added to W) is unbiased and rounding-sized too. A
    section calls it with `grid_only=False` where its only other answer is a list of possible causes."""
    if actual.shape != expected.shape or not actual.is_floating_point() or actual.numel() < 2:
        return None
    a, e = actual.detach().double().cpu(), expected.detach().double().cpu()
    if not (torch.isfinite(a).all() and torch.isfinite(e).all()):
        return None
    off = ~torch.isclose(a, e, rtol=rtol, atol=atol)
    scale = float(e.abs().max())
    if int(off.sum()) < 2 or scale == 0:
        return None
    relative = (a - e).abs() / (e.abs() + 0.01 * scale)
    worst = float(relative.max())
    for low in LOW_DTYPES:
        share = float((expected.detach().to(low).to(expected.dtype) == expected.detach()).double().mean())
        if worst <= _ROUNDINGS * _UNIT[low] and on_grid(actual, low) and share < 0.5:
            return _reading(low, worst, on_grid=True)
    coarser_than_float16 = _ROUNDINGS / 2 * _UNIT[torch.float16] < worst <= _ROUNDINGS * _UNIT[torch.bfloat16]
    if not grid_only and coarser_than_float16 and _unbiased(a, e, off):
        return _reading(torch.bfloat16, worst, on_grid=False)
    return None


def on_grid(x: Tensor, low: torch.dtype) -> bool:
    """Every value of `x` is exactly a number of the dtype `low` (what a result computed in `low` and cast back is)."""
    return bool((x.detach().to(low).to(x.dtype) == x.detach()).all())


def _reading(low: torch.dtype, worst: float, on_grid: bool) -> tuple[str, str]:
    name = LOW_DTYPES[low]
    seen = (
        f"every value you returned is exactly a {name} number, and each is within {worst:.2%} of the expected"
        if on_grid
        else f"every value is within {worst:.2%} of the expected one (relative to its size), beyond float32 "
        f"rounding but the size of {name} rounding"
    )
    return "low_precision", (
        f"{seen}: part of the computation ran in {name} (a .half()/.bfloat16() round-trip, a tensor made with "
        f"dtype={name}, or autocast) and lost precision. Keep the inputs' dtype throughout; if nothing is in "
        "lower precision, look for a small relative change (a constant such as an eps, an approximate function)"
    )


def _unbiased(a: Tensor, e: Tensor, off: Tensor) -> bool:
    """Rounding moves a value up or down alike, relative to its sign: at 8 or more wrong positions, between 15% and
    85% of them moved away from 0 (a constant factor, a small added term or an eps moves every value one way)."""
    away = ((a - e) * e.sign())[off] > 0
    return away.numel() >= 8 and 0.15 <= float(away.double().mean()) <= 0.85
