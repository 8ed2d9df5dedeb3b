"""A reshape where a transpose belongs, as a candidate value: shared by the checkers of parts 2, 3 and 4 (a section
imports only earlier sections, so the shared mechanism lives here)."""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor


def regrouped_candidates(x: Tensor, reference: Callable[[Tensor], Tensor], name: str, axes: tuple[str, str, str]):
    """What a reshape where a transpose belongs gives: `x` [a0 a1 a2] regrouped to [a0 a2 a1] by reshape or view (the
    numbers kept in memory order) and then used as if its last two axes had been swapped. `reference` takes x's own
    layout, so the value is reference(x.reshape(a0, a2, a1).mT). Sizes a1 != a2 make it differ from the right one."""
    k, a, b = x.shape
    if a == b:
        return []
    moved = f"{name}.reshape({axes[0]}, {axes[2]}, {axes[1]})"
    return [
        (
            "reshape_not_transpose",
            f"your values are the right ones computed from {moved} (sizes {k}, {b}, {a}) as if it were {name} with its "
            f"last two axes swapped: reshape and view only regroup the numbers in memory order, they don't move axes, "
            f"so each of your vectors mixes coordinates of several vectors; swap the axes with {name}.transpose(1, 2) "
            f"(or {name}.mT), or contract over the right axis without moving any",
            reference(x.reshape(k, b, a).mT),
        )
    ]
