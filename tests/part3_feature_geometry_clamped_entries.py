"""compute_dimensionality with an elementwise clamp (clamp_min(eps), relu) applied to the vectors' entries where the
norm was meant to be clamped: `v.clamp_min(1e-12).norm(...)` is the norm of the positive part. The learner's values
are matched against D_i with the positive part's norm in the unit vector, in the numerator, in both, or the whole
formula on the positive part, so the hint names the clamp instead of only saying that a rotation changes the values."""

from __future__ import annotations

import torch
from torch import Tensor

from tests.checking import fail


def _d(num_sq: Tensor, unit: Tensor, v: Tensor) -> Tensor:
    return num_sq / torch.einsum("kid,kjd->kij", unit, v).pow(2).sum(-1).clamp_min(1e-300)


def clamped_entries_failure(out: Tensor, v: Tensor, sym: tuple[str, str] = ("v", "v̂")) -> None:
    """Fail (code clamped_entries) when `out` [inst n] equals, at every vector whose positive part is not tiny, one of
    the readings of D_i on v [inst n d] with the entries clamped at 0 somewhere. The checker's vectors are random with
    entries of both signs, so the positive part's norm differs from the norm and no right answer matches."""
    got, v = out.detach().double().cpu(), v.detach().double().cpu()
    pos = v.clamp_min(1e-12)
    norm, norm_pos = v.norm(dim=-1), pos.norm(dim=-1)
    keep = norm_pos > 1e-6 * norm.clamp_min(1e-300)
    if got.shape != norm.shape or int(keep.sum()) < max(3, keep.numel() // 2) or bool((v >= 0).all()):
        return
    x, u = sym
    unit_pos = v / norm_pos[..., None]
    readings = (
        (f"the unit vector {u}_i = {x}_i / ‖{x}_i.clamp_min(eps)‖", _d(norm**2, unit_pos, v)),
        (f"both ‖{x}_i‖² and {u}_i from {x}_i.clamp_min(eps)", _d(norm_pos**2, unit_pos, v)),
        (f"the numerator ‖{x}_i.clamp_min(eps)‖²", _d(norm_pos**2, v / norm[..., None].clamp_min(1e-300), v)),
        (f"the whole formula on {x}.clamp_min(eps) (or relu({x}))", _d(norm_pos**2, pos / norm_pos[..., None], pos)),
    )
    for where, value in readings:
        if torch.allclose(got[keep], value[keep], rtol=1e-4, atol=1e-6):
            fail(
                f"your values equal D_i computed with {where}: the norm of the positive part of the vector (every "
                "negative coordinate replaced by the clamp's floor)",
                f"a clamp meant for the norm is applied to the entries: {x}.clamp_min(1e-12).norm(...) clamps each "
                f"coordinate first (an elementwise clamp_min, relu or max with eps), so the norm ignores the negative "
                f"ones; take the norm, then clamp it: {x}.norm(dim=...).clamp_min(1e-12)",
                code="clamped_entries",
            )
