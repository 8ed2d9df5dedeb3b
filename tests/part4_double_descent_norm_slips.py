"""compute_dimensionality (part 4, v [inst n d]): slips in the norm of each vector. ‖v_i‖² taken as a mean over the d
coordinates instead of a sum (D / d when used once, in the numerator or in the normalisation, D / d² when used in
both: catalogue entries), and a constant added to the norm used to normalise, v / (‖v‖ + c) or v / √(‖v‖² + c): D is
then the right value times ((‖v_i‖ + c) / ‖v_i‖)², so c is solved per vector and named when every vector (norms over
two orders of magnitude) gives the same c."""

from __future__ import annotations

import torch
from torch import Tensor

from tests.checking import fail


def _dimensionality(v: Tensor) -> Tensor:
    norm_sq = v.pow(2).sum(-1)
    den = torch.einsum("kid,kjd->kij", v, v).pow(2).sum(-1)
    return torch.where(den > 0, norm_sq**2 / den, torch.zeros_like(den))


def mean_norm_candidates(v: Tensor) -> list[tuple[str, str, Tensor]]:
    """(code, hint, value) of ‖v_i‖² computed as a mean over d, once or twice, on v [inst n d]."""
    v = v.double()
    d = v.shape[-1]
    right = _dimensionality(v)
    where = {
        d: "once, in the numerator or in the norm used to normalise",
        d * d: "twice, in the numerator and in the norm used to normalise",
    }
    return [
        (
            "mean_over_d",
            f"your values are D_i / {factor}: ‖v_i‖² computed as a mean over the d = {d} coordinates "
            f"((v**2).mean(-1)) where the sum belongs, {how}: ‖v_i‖² = (v**2).sum(-1)",
            right / factor,
        )
        for factor, how in where.items()
    ]


def _constant(x: Tensor) -> float | None:
    """The one value of x (relative 1e-4), or None."""
    if x.numel() == 0 or not bool(torch.isfinite(x).all()):
        return None
    c = float(x.median())
    return c if bool(((x - c).abs() <= 1e-4 * max(abs(c), 1e-12)).all()) else None


def norm_constant_failure(out: Tensor, expected: Tensor, v: Tensor, what: str) -> None:
    """D read back with Ŵ = v / (‖v‖ + c) or v / √(‖v‖² + c): the same c for every vector names the eps."""
    if not isinstance(out, Tensor) or out.shape != expected.shape or out.device.type == "meta":
        return
    got, exp = out.detach().double().cpu().flatten(), expected.detach().double().cpu().flatten()
    norms = v.detach().double().cpu().norm(dim=-1).flatten()
    keep = (exp > 0) & (norms > 0)
    if int(keep.sum()) < 3 or not bool((got[keep] > 0).all()):
        return
    ratio, n = got[keep] / exp[keep], norms[keep]
    if bool(torch.isclose(ratio, torch.ones_like(ratio), rtol=1e-4).all()):
        return
    far = (ratio - 1).abs() > 1e-3  # solved where the change is well above float32 noise, then checked everywhere
    if int(far.sum()) < 3:
        return
    forms = (  # (c solved from one vector, the ratio that c predicts, how it reads, what it is)
        (
            lambda r, m: m * (r.sqrt() - 1),
            lambda c: ((n + c) / n).pow(2),
            "v_i / (‖v_i‖ + {c})",
            "a constant added to the norm",
        ),
        (
            lambda r, m: m.pow(2) * (r - 1),
            lambda c: (n.pow(2) + c) / n.pow(2),
            "v_i / √(‖v_i‖² + {c})",
            "a constant added to the squared norm",
        ),
    )
    for solve, predict, how, fix in forms:
        c = _constant(solve(ratio[far], n[far]))
        if c is not None and not bool(torch.allclose(ratio, predict(c), rtol=1e-4)):
            c = None
        if c is not None and abs(c) > 1e-6:
            fail(
                f"{what}: your values are the right D_i with v̂_i = {how.format(c=f'{c:.4g}')} in place of v_i / ‖v_i‖ "
                "(the ratio to the right value follows every vector's norm exactly that way)",
                f"{fix} in the normalisation (an eps of {c:.4g}) changes every D_i, most for short vectors: divide by "
                "the norm itself, and guard only a zero vector (norm.clamp_min(1e-12), or torch.where)",
                code="norm_plus_constant",
            )
