"""Exclusive children's rates given the parent when the bins' lower edges are off: shifted down by one (child 0
never fires), or the last bin starting at n_children·p_child. The second law has two causes that give the same
rates for every allowed config (n_children·p_child <= 1): edges shifted up by one, child j on [(j+1)·p, (j+2)·p),
and edges spread by torch.linspace(0, n_children·p_child, n_children). Both put every bin but the last inside
[0, 1) and the last at [n·p, (n+1)·p), so the hint lists both."""

from __future__ import annotations

from torch import Tensor


def edges_shifted_candidate(j: Tensor, pc: float, s: int) -> tuple[Tensor, str, str]:
    """(rates over child index `j`, hint, code) for lower edges shifted by `s` (+1 or -1) bins."""
    rates = ((j + 1 + s) * pc).clamp(0, 1).sub(((j + s) * pc).clamp(0, 1))
    fix = "child j fires when u is in [j·p_child, (j + 1)·p_child), i.e. lower edges torch.arange(n_children) · p_child"
    if s < 0:
        hint = (
            "child 0 never fires and child j fires as if its interval were [(j-1)·p_child, j·p_child), cut to "
            f"[0, 1): the lower edges are shifted down by one; {fix}"
        )
    else:
        hint = (
            "every child fires at p_child except the last, which fires at 1 - n_children·p_child: the last "
            "child's interval starts at n_children·p_child, not (n_children - 1)·p_child, and runs past 1. Two "
            "edge mistakes give exactly these rates: lower edges spread by torch.linspace(0, n_children·p_child, "
            "n_children) (the last at n·p), or every edge shifted up by one (child j on [(j+1)·p_child, "
            f"(j+2)·p_child)); {fix} (no linspace)"
        )
    return rates, hint, "exclusive_edges_shifted"
