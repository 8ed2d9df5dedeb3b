"""Name a squared error written as a difference of squares: a² - b² where (a - b)² belongs.

A learner who writes `(target.pow(2) - out.pow(2)).mean(-1)` for `(target - out).pow(2).mean(-1)` squares each side
before subtracting: the cross term -2·a·b is lost and the "loss" can be negative. `difference_of_squares` returns
catalogue entries (code, hint, value) for both orders, a² - b² and b² - a², reduced by the caller's own reduction,
for `expect_matches`; an entry equal to the right loss is left out, so a correct answer never meets one.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


def difference_of_squares(
    a: Tensor, b: Tensor, reduce: Callable[[Tensor], Tensor], a_name: str, b_name: str
) -> list[tuple[str, str, Tensor]]:
    """Entries for reduce(a² - b²) and reduce(b² - a²), where the right loss is reduce((a - b)²)."""
    right = reduce((a - b).pow(2))
    entries = []
    for x, y, xn, yn in ((a, b, a_name, b_name), (b, a, b_name, a_name)):
        value = reduce(x.pow(2) - y.pow(2))
        if value.shape == right.shape and torch.allclose(value.double(), right.double(), rtol=1e-4, atol=1e-6):
            continue
        negative = int((value < 0).sum())
        seen = (
            f" (that is why your loss is negative on {negative} of {value.numel()} entries, which a squared error "
            "never is)"
            if negative
            else ""
        )
        entries.append(
            (
                "difference_of_squares",
                f"your loss is {xn}² - {yn}², each side squared and then subtracted, where the square of the "
                f"difference belongs{seen}: subtract first, then square, ({a_name} - {b_name})² = {a_name}² - "
                f"2·{a_name}·{b_name} + {b_name}², not {xn}² - {yn}²",
                value,
            )
        )
    return entries
