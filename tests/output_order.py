"""Outputs returned in another order: a tuple whose shapes match the expected outputs' shapes only once permuted.

`expect_output_order(got, want, names)` fails with code `outputs_order` when the returned outputs' shapes (or types,
for a dict) are not the expected ones position by position but are exactly those of the expected outputs in another
order, and that order is the only one the shapes allow (so the swap is what explains the shapes, not a guess).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import permutations
from typing import Any

from torch import Tensor

from tests.checking import fail

ORDINALS = ("1st", "2nd", "3rd", "4th", "5th", "6th", "7th", "8th")


def _signature(value: Any) -> Any:
    if isinstance(value, Tensor):
        return ("tensor", tuple(value.shape))
    if isinstance(value, dict):
        return ("dict",)
    return ("other", type(value).__name__)


def expect_output_order(got: Sequence, want: Sequence, names: Sequence[str]) -> None:
    """Fail (`outputs_order`) when `got` holds `want`'s shapes in a different, unique order; else return."""
    have, need = [_signature(v) for v in got], [_signature(v) for v in want]
    if len(have) != len(need) or have == need or len(names) != len(need):
        return
    fits = [p for p in permutations(range(len(need))) if all(have[i] == need[j] for i, j in enumerate(p))]
    if len(fits) != 1:  # no order explains the shapes, or several do: leave it to the per-output checks
        return
    order = fits[0]
    moved = [(i, j) for i, j in enumerate(order) if i != j and have[i] != need[i]]
    if not moved:
        return
    parts = [f"your {ORDINALS[i]} output has the shape of {names[j]}" for i, j in moved]
    said = ", ".join(parts[:-1]) + (" and " if len(parts) > 1 else "") + parts[-1]
    fail(
        f"{said}: outputs returned in a different order?",
        f"return ({', '.join(names)}) in that order",
        code="outputs_order",
    )


FORWARD_OUTPUTS = ("loss_dict", "loss", "acts_post", "h_reconstructed")  # parts 5 and 5a's SAE forward
