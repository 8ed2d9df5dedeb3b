"""Two slips at once in the dimensionality formula (round BB): D_i = ‖v_i‖² / Σ_j (v̂_i·v_j)² is built from a few
independent choices (which axis the unit vector is normalised over, which side of the dot product is normalised, how
an overlap is turned positive, which index is summed, whether j = i is kept, sum or mean, the numerator's power).
The catalogues name one wrong choice at a time; a learner who makes two at once got a generic hint. This module
composes every pair of wrong choices, reads the learner's output back against each composition, and names both.

Shared by part 3 (W [inst, d_hidden, feats], passed as W.mT) and part 4 (v [inst, n, d]): vectors [inst, n, d].
"""

from __future__ import annotations

import itertools

import torch
from torch import Tensor

from tests.checking import fail


def _choices(names: dict[str, str]) -> list[list[tuple[str | None, object]]]:
    """Per choice, its options: (None, right option) first, then (description of the slip, option)."""
    feats, coords, vec = names["vectors"], names["coords"], names["v"]
    return [
        [(None, -1), (f"{vec}̂ normalised over the {feats} axis instead of over the {coords} (the wrong dim)", 1)],
        [
            (None, "one"),
            (f"both vectors of each dot product normalised ({vec}̂_i·{vec}̂_j where {vec}̂_i·{vec}_j belongs)", "both"),
            (f"neither vector normalised ({vec}_i·{vec}_j where {vec}̂_i·{vec}_j belongs)", "none"),
        ],
        [
            (None, "square"),
            ("the overlaps not squared but taken in absolute value (|·| where (·)² belongs)", "abs"),
            ("the overlaps neither squared nor made positive (a signed sum)", "signed"),
        ],
        [(None, -1), ("the sum over i instead of over j (the other axis of the overlap matrix)", -2)],
        [
            (None, True),
            ("the self term j = i left out (the sum runs over every j, i included)", False),
            (f"the self term added on its own as ‖{vec}_i‖² next to the other terms j ≠ i", "norm"),
        ],
        [(None, "sum"), ("a mean over j where the formula has a sum", "mean")],
        [
            (None, 2),
            (f"the numerator ‖{vec}_i‖ where ‖{vec}_i‖² belongs", 1),
            (f"the numerator ‖{vec}_i‖⁴ where ‖{vec}_i‖² belongs", 4),
            (f"the numerator left out (1 where ‖{vec}_i‖² belongs)", 0),
        ],
    ]


def _value(
    v: Tensor, axis: int, side: str, op: str, sum_dim: int, self_term: bool | str, reduce: str, power: int
) -> Tensor:
    norm_sq = v.pow(2).sum(-1)
    unit = v / v.norm(dim=axis, keepdim=True).clamp_min(1e-300)
    left, right = {"one": (unit, v), "both": (unit, unit), "none": (v, v)}[side]
    dots = torch.einsum("kid,kjd->kij", left, right)
    terms = {"square": dots.pow(2), "abs": dots.abs(), "signed": dots}[op]
    if self_term is not True:
        terms = terms.masked_fill(torch.eye(v.shape[1], dtype=torch.bool), 0.0)
    den = terms.sum(sum_dim) if reduce == "sum" else terms.mean(sum_dim)
    if self_term == "norm":
        den = den + norm_sq
    num = norm_sq.sqrt().pow(power)
    return torch.where(norm_sq > 0, num / den, torch.zeros_like(num))


def slip_pair_failure(out: Tensor, vectors: Tensor, what: str, names: dict[str, str], formula: str) -> None:
    """Name the two wrong choices whose composition reproduces `out` [inst, n] on `vectors` [inst, n, d]."""
    if not isinstance(out, Tensor) or out.device.type == "meta" or tuple(out.shape) != tuple(vectors.shape[:2]):
        return
    got = out.detach().double().cpu()
    if not torch.isfinite(got).all():
        return
    v = vectors.detach().double().cpu()
    choices = _choices(names)
    right = _value(v, *(options[0][1] for options in choices))
    if torch.allclose(got, right, rtol=1e-4, atol=1e-6):
        return
    found: list[tuple[str, str]] = []
    for a, b in itertools.combinations(range(len(choices)), 2):
        for (slip_a, opt_a), (slip_b, opt_b) in itertools.product(choices[a][1:], choices[b][1:]):
            picks = [options[0][1] for options in choices]
            picks[a], picks[b] = opt_a, opt_b
            value = _value(v, *picks)
            if not torch.isfinite(value).all() or torch.allclose(value, right, rtol=1e-4, atol=1e-6):
                continue
            if torch.allclose(got, value, rtol=1e-4, atol=1e-6):
                found.append((slip_a, slip_b))
    if not found or len(found) > 3:
        return
    readings = " — or — ".join(f"(1) {a}; (2) {b}" for a, b in found)
    fail(
        f"{what} is read back exactly as the formula with two slips at once: {readings}",
        f"{'these two slips' if len(found) == 1 else 'one of these pairs of slips'} together give your values; "
        f"fix both: {formula}",
        code="two_slips",
    )
