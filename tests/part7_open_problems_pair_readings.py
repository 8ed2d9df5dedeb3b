"""compute_target's AND / OR pairs: which reading of the pair's VALUES the learner's output is, when it is one.

A truth value built from a combination of the two values (their min, max, product or sum, compared with 0) agrees
with (a != 0) & (b != 0) / (a != 0) | (b != 0) on non-negative inputs and not on pairs with a negative member."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["pair_reading"]

_WHY = {
    "min": "min(a, b) is the negative member whenever one is negative (even if the other is absent, 0)",
    "max": "max(a, b) is 0 when one member is absent and the other negative",
    "prod": "a·b is negative when exactly one member is negative",
    "sum": "a + b takes the sign of the larger member",
    "pos": "a > 0 is false for a negative member",
}


def pair_reading(got: Tensor, a: Tensor, b: Tensor, expected: Tensor) -> str:
    """'' or a sentence naming every value reading of the pair that `got` equals exactly (and the right one doesn't)."""
    lo, hi = torch.minimum(a, b), torch.maximum(a, b)
    readings = [
        ("min(a, b) != 0", "min", lo != 0),
        ("min(a, b) > 0", "min", lo > 0),
        ("max(a, b) != 0", "max", hi != 0),
        ("max(a, b) > 0", "max", hi > 0),
        ("a·b > 0", "prod", a * b > 0),
        ("a + b > 0", "sum", a + b > 0),
        ("(a > 0) & (b > 0)", "pos", (a > 0) & (b > 0)),
        ("(a > 0) | (b > 0)", "pos", (a > 0) | (b > 0)),
    ]
    g = got.detach().to(expected.dtype)
    fits = [
        (expr, why)
        for expr, why, value in readings
        if torch.equal(g, value.to(expected.dtype)) and not torch.equal(value.to(expected.dtype), expected)
    ]
    if not fits:
        return ""
    exprs = " and ".join(expr for expr, _ in fits)
    more, fewer = bool((g > expected).any()), bool((g < expected).any())
    read = "present (1)" if more and not fewer else "absent (0)" if fewer and not more else "present or absent"
    return (
        f"your output equals {exprs} of the pair's values on every pair: {_WHY[fits[0][1]]}, so a pair with a "
        f"negative member reads as {read} by its values' signs, not by which members are non-zero. "
    )
