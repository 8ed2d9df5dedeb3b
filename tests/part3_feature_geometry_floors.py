"""Part 3's ratios (D* = d_hidden / ‖W‖²_F, D_i = ‖W_i‖⁴ / Σ_j (W_i·W_j)²) bent at a constant: the learner's values
read back as min(c, right) (a cap on the result) or as num / max(den, c) (a floor on the denominator). With a
constant numerator the two readings give the same values, so both are named."""

from __future__ import annotations

import torch
from torch import Tensor

from tests.checking import fail


def _constant(x: Tensor) -> float | None:
    """The one value of x (relative 1e-4), or None."""
    if x.numel() == 0 or not bool(torch.isfinite(x).all()):
        return None
    c = float(x.median())
    return c if bool(((x - c).abs() <= 1e-4 * max(abs(c), 1e-12)).all()) else None


def bent_ratio_failure(
    out: Tensor, num: Tensor, den: Tensor, what: str, num_name: str, den_name: str, code: str = "bent_ratio"
) -> None:
    """Fail naming a cap on the result or a floor on the denominator when `out` equals the right num / den wherever
    that is on one side of a constant and is bent at the constant elsewhere. Positions with den == 0 are skipped."""
    out = out.detach().double().cpu().flatten()
    num = num.detach().double().cpu().flatten().expand_as(out)
    den = den.detach().double().cpu().flatten().expand_as(out)
    keep = den > 0
    out, num, den = out[keep], num[keep], den[keep]
    right = num / den
    if out.shape != right.shape or not bool(torch.isfinite(out).all()):
        return
    differ = ~torch.isclose(out, right, rtol=1e-4, atol=1e-7)
    if not bool(differ.any()):
        return
    agree = ~differ
    cap = _constant(out[differ])
    cap_ok = cap is not None and bool((right[differ] > cap).all()) and bool((right[agree] <= cap * (1 + 1e-4)).all())
    floor = _constant(num[differ] / out[differ]) if bool((out[differ] != 0).all()) else None
    floor_ok = (
        floor is not None and bool((den[differ] < floor).all()) and bool((den[agree] >= floor * (1 - 1e-4)).all())
    )
    if not (cap_ok or floor_ok):
        return
    n, total = int(differ.sum()), out.numel()
    causes = []
    if cap_ok:
        causes.append(
            f"a cap on the result at {cap:.4g} (.clamp(max={cap:.4g}), min(·, {cap:.4g})): the ratio is not bounded "
            f"by {cap:.4g}, it grows as {den_name} shrinks"
        )
    if floor_ok:
        causes.append(
            f"a floor on the denominator at {floor:.4g} (clamp_min({floor:.4g}), max(·, {floor:.4g}), an eps guard "
            f"typed as a floor): guard only a zero {den_name}, e.g. clamp_min(1e-30) or torch.where"
        )
    if cap_ok and floor_ok and abs(floor - 1) < 1e-4 <= abs(cap - 1):
        causes.reverse()
    if cap_ok:
        seen = f"your values equal min({cap:.4g}, {num_name} / {den_name}): right where that is below {cap:.4g}"
        seen += f" and exactly {cap:.4g} at the other {n} of {total} positions"
    else:
        seen = f"your values equal {num_name} / max({den_name}, {floor:.4g}): right where {den_name} >= {floor:.4g}"
        seen += f", wrong at the {n} of {total} positions where it is smaller"
    both = " (with this numerator the two give the same values)" if cap_ok and floor_ok else ""
    fail(f"{what}: {seen}", f"possible causes{both}: " + "; or ".join(causes), code=code)


def norm_constant_failure(out: Tensor, expected: Tensor, W: Tensor, what: str) -> None:
    """D_i read back with a normalisation that has an additive constant: Ŵ_i = W_i / (‖W_i‖ + c) makes D_i the right
    one times ((‖W_i‖ + c) / ‖W_i‖)², Ŵ_i = W_i / √(‖W_i‖² + c) times (‖W_i‖² + c) / ‖W_i‖². The constant c is
    solved per feature and named only when every feature (columns of different norms) gives the same c."""
    got, exp = out.detach().double().cpu().flatten(), expected.detach().double().cpu().flatten()
    norms = W.detach().double().norm(dim=1).cpu().flatten()
    keep = (exp > 0) & (norms > 0)
    if got.shape != exp.shape or int(keep.sum()) < 3 or not bool((got[keep] > 0).all()):
        return
    ratio, n = got[keep] / exp[keep], norms[keep]
    if bool(torch.isclose(ratio, torch.ones_like(ratio), rtol=1e-4).all()):
        return
    for c, how, fix in (
        (_constant(n * (ratio.sqrt() - 1)), "W_i / (‖W_i‖ + {c})", "a constant added to the norm"),
        (
            _constant(n.pow(2) * (ratio - 1)),
            "W_i / √(‖W_i‖² + {c})",
            "a constant added to the squared norm (or to the numerator ‖W_i‖²: the same values)",
        ),
    ):
        if c is not None and abs(c) > 1e-6:
            fail(
                f"{what}: your values are the right D_i with Ŵ_i = {how.format(c=f'{c:.4g}')} in place of W_i / ‖W_i‖ "
                "(the ratio to the right value follows every column's norm exactly that way)",
                f"{fix} in the normalisation (an eps of {c:.4g}) changes every D_i, most for short columns: divide "
                "by the norm itself, and guard only a zero column (torch.where, or an eps like 1e-12)",
                code="norm_plus_constant",
            )
