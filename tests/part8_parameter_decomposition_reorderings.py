"""Part 8: an output that is the expected one with whole axes reversed or one axis permuted, the axis named.

The generic version of `readings.reordered_hint`'s fallback ("the axes are out of order"): when the returned tensor
equals the expected one read backwards along some axes (`.flip(axes)`), or with the entries of one axis taken in
another order, say which axis (a flip or index on the instance axis where the term axis was meant, for example).
The flip search is `tests.checking.reversed_axes`, shared with `generic_diagnosis`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from tests import part8_parameter_decomposition_diagnosis as diag
from tests.checking import reversed_axes

RTOL, ATOL = 1e-4, 1e-6


def _close(a: Tensor, b: Tensor) -> bool:
    return bool(torch.allclose(a, b, rtol=RTOL, atol=ATOL))


def _slice_permutation(a: Tensor, e: Tensor, axis: int) -> list[int] | None:
    """perm with a.select(axis, i) == e.select(axis, perm[i]) for every i (not the identity), else None."""
    n = a.shape[axis]
    a_s, e_s = a.movedim(axis, 0).reshape(n, -1), e.movedim(axis, 0).reshape(n, -1)
    perm: list[int] = []
    for i in range(n):
        j = next((j for j in range(n) if j not in perm and _close(a_s[i], e_s[j])), None)
        if j is None:
            return None
        perm.append(j)
    return None if perm == list(range(n)) else perm


def axes_reordered(actual: Tensor, expected: Tensor, dims: str | None) -> tuple[str, str] | None:
    """(code, hint) when `actual` is `expected` with the fewest axes reversed (`flip`), or with the entries of one
    axis permuted (each slice of `actual` along it is a slice of `expected`), naming the axes; else None."""
    if actual.shape != expected.shape or not actual.is_floating_point() or actual.numel() < 2:
        return None
    a, e = actual.detach().double().cpu(), expected.detach().double().cpu()
    if _close(a, e):
        return None
    names = dims.split() if dims and len(dims.split()) == a.ndim else [f"axis {i}" for i in range(a.ndim)]
    axes = [i for i in range(a.ndim) if a.shape[i] > 1]
    label = lambda i: f"`{names[i]}` (axis {i})"
    subset = reversed_axes(a, e, _close)
    if subset is not None:
        k = len(subset)
        listed = " and ".join(label(i) for i in subset)
        flip = f".flip({', '.join(map(str, subset))})"
        if k == 1:
            cause = (
                f"the `{names[subset[0]]}` entries in reverse order: a flip or [::-1] index on the "
                f"`{names[subset[0]]}` axis where another axis was meant (or an order reversed that was right)?"
            )
        else:
            first, second = names[subset[0]], names[subset[1]]
            cause = (
                f"the `{first}` entries in another order: a flip or index on the `{first}` axis where the "
                f"`{second}` axis was meant (or the reverse)? e.g. an ascending order undone with "
                f".flip({subset[0]}) instead of .flip({subset[1]}) leaves the `{second}` entries reversed and "
                f"reverses the `{first}` ones"
            )
        return "axes_reversed", (
            f"your output is the expected one with the {listed} ax{'is' if k == 1 else 'es'} reversed (yours{flip} "
            f"equals the expected output): {cause}"
        )
    for axis in axes:
        perm = _slice_permutation(a, e, axis)
        if perm is not None:
            return "axis_permuted", (
                f"your output is the expected one with the entries of the {label(axis)} axis in another order (your "
                f"`{names[axis]}` entry i is the expected entry {perm}[i], the rest in place): the `{names[axis]}` "
                f"entries taken in another order (a flip, sort or index on the `{names[axis]}` axis, or one meant "
                "for another axis?): keep the order they come in"
            )
    return None


def reordered_hint(actual: Tensor, expected: Tensor, dims: str, name_one_axis: bool = True) -> tuple[str, str] | None:
    """`diag.reordered_hint` (with `dims` when `name_one_axis`: a reordering along one axis only, named there), but
    where it only says "the axes are out of order", the axes reversed or the axis permuted when one of those fits."""
    base = diag.reordered_hint(actual, expected, dims if name_one_axis else None)
    if base is None:
        return None  # not the same values: neither a flip nor a permutation
    if name_one_axis:  # the single-axis reading of diag.reordered_hint already names its axis
        along = lambda t, axis: t.detach().double().sort(axis).values
        if any(actual.shape[i] > 1 and _close(along(actual, i), along(expected, i)) for i in range(actual.ndim)):
            return base
    return axes_reordered(actual, expected, dims) or base
