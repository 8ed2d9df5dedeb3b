"""Resampled decoder rows that are not unit vectors, read back exactly: an L1 or L∞ norm, one norm taken over several
directions at once (their squared lengths sum to 1), or b_dec subtracted (or added) after normalising instead of
before."""

from __future__ import annotations

import torch
from torch import Tensor

from tests.checking import fail


def _unit(x: Tensor) -> bool:
    n = x.double().norm(dim=-1)
    return bool(torch.allclose(n, torch.ones_like(n), atol=1e-4))


def joint_norm(norms: Tensor, inst_of: Tensor) -> None:
    """`norms` [n] of the new rows, `inst_of` [n] their instance: when the squared norms sum to 1 over all rows, or
    over each instance's rows, every row was divided by one norm of the whole stack of directions (no dim)."""
    if norms.numel() < 2:
        return
    sq = norms.double().pow(2)
    one = lambda t: abs(float(t) - 1) < 1e-4
    if one(sq.sum()):
        where = f"all {norms.numel()} new directions together"
    elif all(one(sq[inst_of == k].sum()) for k in inst_of.unique()):
        where = "each instance's new directions together"
    else:
        return
    fail(
        f"resampled decoder rows have norms between {norms.min():.3g} and {norms.max():.3g}, expected 1; their "
        f"squared norms sum to 1 over {where}: they were divided by one norm of the whole [n d_in] stack "
        "(.norm() with no dim, the Frobenius norm), not each by its own",
        "normalise each direction by its own norm: `v / v.norm(dim=-1, keepdim=True)`",
        code="joint_norm",
    )


def bias_after_normalising(rows: Tensor, inst_of: Tensor, b_dec: Tensor) -> None:
    """`rows` [n d_in] not unit; `b_dec` [inst d_in] before the call: when rows + b_dec (or rows - b_dec) are unit
    vectors, b_dec was subtracted (added) after normalising, not before."""
    b = b_dec.detach()[inst_of]
    if bool((b.norm(dim=-1) < 1e-3).all()):
        return
    for sign, did in ((1.0, "subtracted"), (-1.0, "added")):
        if _unit(rows + sign * b):
            fail(
                f"resampled decoder rows are not unit vectors, but each row {'+' if sign > 0 else '-'} b_dec is: "
                f"the input was normalised first and b_dec {did} afterwards",
                "subtract b_dec first, then normalise: v = (h - b_dec) / ‖h - b_dec‖ (the direction the SAE "
                "misses is measured from b_dec)",
                code="normalised_before_b_dec",
            )


def other_p_norm(rows: Tensor) -> None:
    """`rows` [n d_in] not unit in L2: when every row has unit L1 norm (sum of |v|) or unit L∞ norm (max |v|), the
    draw was divided by that norm instead of its Euclidean length."""
    if rows.shape[-1] < 2:
        return
    for p, name, expr in ((1, "L1", "v.abs().sum(-1)"), (float("inf"), "L∞", "v.abs().max(-1)")):
        n = torch.linalg.vector_norm(rows.double(), ord=p, dim=-1)
        if bool(torch.allclose(n, torch.ones_like(n), atol=1e-4)):
            l2 = rows.double().norm(dim=-1)
            fail(
                f"resampled decoder rows have Euclidean norms between {l2.min():.3g} and {l2.max():.3g}, expected 1; "
                f"every row has {name} norm 1 ({expr} = 1): each direction was divided by its {name} norm",
                "normalise by the Euclidean (L2) length: `v / v.norm(dim=-1, keepdim=True)`",
                code="dec_wrong_p_norm",
            )


def not_unit_readings(rows: Tensor, norms: Tensor, inst_of: Tensor, b_dec: Tensor) -> None:
    """The readings above, for new decoder rows `rows` [n d_in] (norms [n], instance [n]) that are not unit."""
    joint_norm(norms, inst_of)
    other_p_norm(rows)
    bias_after_normalising(rows, inst_of, b_dec)
