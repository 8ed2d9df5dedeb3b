"""A rate table [inst units] whose rates are all p's values, in the wrong places, read back more closely than "in the
wrong place": p sorted along an axis (p.sort(-1).values, a sort meant for something else), or the units moved by a
permutation that may hold ties (pairs share a probability, so a unit can match several columns: a unit that matches its
own column stays), such as one block's slice of p reversed. Every reading must fit every rate within its tolerance and
must differ from p itself, so it names nothing by chance."""

from __future__ import annotations

from torch import Tensor

from tests.part1_superposition_probes import consistent


def _spans(moved: list[int]) -> list[tuple[int, int]]:
    spans, start = [], moved[0]
    for a, b in zip(moved, [*moved[1:], None], strict=True):
        if b != a + 1:
            spans.append((start, a))
            start = b
    return spans


def reordered_diagnosis(observed: Tensor, p: Tensor, n: int, unit: str) -> tuple[str, str] | None:
    """(code, hint) for rates that are p sorted or p's units permuted (see the module), else None."""
    o, q = observed.double().cpu(), p.double().cpu()
    if o.shape != q.shape or o.dim() != 2 or not consistent(o.flatten().sort().values, q.flatten().sort().values, n):
        return None
    sorts = (
        (f"p sorted along the {unit}s (p.sort(-1).values: each instance's rates in increasing order)", q.sort(-1)[0]),
        (f"p sorted along the {unit}s in decreasing order (p.sort(-1, descending=True))", q.sort(-1, True)[0]),
        ("p sorted along the instances (p.sort(0).values)", q.sort(0)[0]),
        ("p sorted along the instances in decreasing order (p.sort(0, descending=True))", q.sort(0, True)[0]),
    )
    for what, table in sorts:
        if consistent(o, table, n) and not consistent(q, table, n):
            return "presence_reordered", (
                f"every rate is one of p's values, but in the wrong place: they are {what}. Nothing is sorted: each "
                f"entry uses its own p[inst, {unit}]"
            )
    m, mapping = q.shape[1], []
    for j in range(m):
        matches = [k for k in range(m) if consistent(o[:, j], q[:, k], n)]
        if j in matches:
            mapping.append(j)
        elif len(matches) == 1:
            mapping.append(matches[0])
        else:
            return None
    moved = [j for j in range(m) if mapping[j] != j]
    if sorted(mapping) != list(range(m)) or not moved:
        return None
    spans = _spans(moved)
    if all(mapping[a : b + 1] == list(range(b, a - 1, -1)) for a, b in spans):
        where = ", ".join(f"{unit}s {a}-{b}" for a, b in spans)
        return "presence_reordered", (
            f"{where} are present at the rates of the same {unit}s in reverse order, the others at their own: that "
            f"slice of p is reversed (a .flip(-1) or a [::-1]-style index on it); each {unit} uses its own "
            f"p[inst, {unit}]"
        )
    shown = ", ".join(f"{unit} {j} at {unit} {mapping[j]}'s" for j in moved[:4])
    return "presence_reordered", (
        f"some {unit}s are present at the rates of other {unit}s ({shown}), the rest at their own: the "
        f"probabilities are indexed in another order than the {unit}s they belong to (a slice or index of p that "
        f"picks other entries); each {unit} uses its own p[inst, {unit}]"
    )
