"""compute_dimensionality (parts 3 and 4): read back the powers of the norms in a dimensionality that is not scale-free.

Write the overlaps through the cosines: (v̂_i·v_j)² = cos²_ij ‖v_j‖², so D_i = ‖v_i‖² / Σ_j cos²_ij ‖v_j‖². A slip in
a power of a norm (a numerator ‖v_i‖ or ‖v_i‖⁴, a unit vector divided by ‖v_i‖², the norm ‖v_j‖ where its square
belongs, the square of an overlap cos_ij ‖v_j‖² written with ‖v_j‖² inside, a row norm of the overlaps where their sum
of squares belongs) gives ‖v_i‖^a / (Σ_j cos²_ij ‖v_j‖^b)^e with other (a, b, e) than (2, 2, 1). For each b the
other two follow from a least-squares fit of log D on log ‖v_i‖ and log Σ_j cos²_ij ‖v_j‖^b; a fit that is exact (and
needs no constant factor) is a fact about the learner's function, and the hint names the powers that differ.
"""

from __future__ import annotations

import torch
from torch import Tensor

from tests.checking import fail

_SUPERSCRIPT = {0.5: "^½", 1.0: "", 1.5: "^1.5", 2.0: "²", 3.0: "³", 4.0: "⁴", 5.0: "⁵", 6.0: "⁶"}


def _power(x: float) -> str:
    return _SUPERSCRIPT.get(x, f"^{x:g}")


def _fit(base: Tensor, v: Tensor) -> tuple[float, float, float] | None:
    """(a, b, e) with base = ‖v_i‖^a / (Σ_j cos²_ij ‖v_j‖^b)^e exactly, a and e multiples of 1/2, or None."""
    norms = v.norm(dim=-1)  # [inst n]
    ok = (norms > 0) & torch.isfinite(base) & (base > 0)
    if int(ok.sum()) < 6 or not bool((norms > 0).all()):
        return None
    unit = v / norms[..., None]
    cos2 = torch.einsum("kid,kjd->kij", unit, unit).pow(2)
    for b in (2.0, 1.0, 4.0, 0.0, 3.0):
        weights = (cos2 * norms[:, None, :] ** b).sum(-1)
        design = torch.stack([norms.log(), -weights.log()], -1)[ok]
        a, e = torch.linalg.lstsq(design, base.log()[ok][:, None]).solution.flatten().tolist()
        a, e = round(2 * a) / 2, round(2 * e) / 2
        if e <= 0 or (a, b, e) == (2.0, 2.0, 1.0):
            continue
        model = norms[ok] ** a / weights[ok] ** e
        if bool(torch.allclose(model, base[ok], rtol=1e-5, atol=0)):
            return a, b, e
    return None


def degree_failure(base: Tensor, v: Tensor, sym: tuple[str, str]) -> None:
    """Fail (code norm_powers) when `base` [inst n] is ‖v_i‖^a / (Σ_j cos²_ij ‖v_j‖^b)^e for other powers."""
    v = v.detach().double().cpu()
    fitted = _fit(base.detach().double().cpu(), v)
    if fitted is None:
        return
    a, b, e = fitted
    x, u = sym
    got = f"‖{x}_i‖{_power(a)} / " + (
        f"Σ_j cos²_ij ‖{x}_j‖{_power(b)}" if e == 1 else f"(Σ_j cos²_ij ‖{x}_j‖{_power(b)}){_power(e)}"
    )
    causes = []
    if a != 2:
        causes.append(
            f"a power of ‖{x}_i‖ is off by {a - 2:g}: the numerator is ‖{x}_i‖² (not ‖{x}_i‖ or ‖{x}_i‖⁴), and the "
            f"unit vector {u}_i = {x}_i / ‖{x}_i‖ is divided by the norm once (not by ‖{x}_i‖², nor left unnormalised)"
        )
    if b != 2:
        causes.append(
            f"each overlap weighs cos²_ij by ‖{x}_j‖{_power(b)}: ({u}_i·{x}_j)² = cos²_ij ‖{x}_j‖², so with cosines "
            f"the other vector's norm enters squared (cos_ij ‖{x}_j‖, squared; not cos² ‖{x}_j‖ nor (cos ‖{x}_j‖²)²)"
        )
    if e != 1:
        causes.append(
            f"the denominator is raised to the power {e:g}: it is the sum of the squared overlaps itself"
            + (
                " (a norm of the row of overlaps, .norm(dim=-1) or torch.linalg.norm, is its square root)"
                if e == 0.5
                else ""
            )
        )
    fail(
        f"your values are {got} exactly, with cos_ij the cosine between {x}_i and {x}_j; D_i = ‖{x}_i‖² / "
        f"Σ_j cos²_ij ‖{x}_j‖² (the same as ‖{x}_i‖² / Σ_j ({u}_i·{x}_j)²)",
        "; ".join(causes),
        code="norm_powers",
    )
