"""compute_dimensionality (part 3): read back constants added to the numerator and the denominator of the ratio.

A 'safe division' (num + e1) / (den + e2), in the normalised form ‖W_i‖² / Σ_j (Ŵ_i·W_j)² or the unnormalised
‖W_i‖⁴ / Σ_j (W_i·W_j)², gives out · den - num = e1 - e2 · out at every position: a linear fit in (e1, e2) that is
exact, with e1 or e2 above float32 noise, says which constants were added and where. A constant added only to the
denominator is left to the floor reading (bent_ratio_failure) unless it is the numerator's too.
"""

from __future__ import annotations

import torch
from torch import Tensor

from tests.checking import fail


def _exact(o: Tensor, num: Tensor, den: Tensor, e1: float, e2: float) -> bool:
    return bool(torch.allclose((num + e1) / (den + e2), o, rtol=1e-5, atol=1e-8))


def eps_offset_failure(out: Tensor, W: Tensor, what: str) -> None:
    """Fail (code eps_offsets) when out = (num + e1) / (den + e2) exactly with e1 != 0, for one of the two forms."""
    o, Wd = out.detach().double().cpu(), W.detach().double().cpu()
    if o.shape != Wd.shape[::2] or not bool(torch.isfinite(o).all()):
        return
    norms_sq = Wd.pow(2).sum(1)
    if bool((norms_sq == 0).any()):
        return
    raw = torch.einsum("kdi,kdj->kij", Wd, Wd).pow(2).sum(-1)
    forms = (
        ("‖W_i‖²", "Σ_j (Ŵ_i·W_j)²", norms_sq, raw / norms_sq),
        ("‖W_i‖⁴", "Σ_j (W_i·W_j)²", norms_sq**2, raw),
    )
    for num_name, den_name, num, den in forms:
        y = (o * den - num).flatten()
        design = torch.stack([torch.ones_like(y), -o.flatten()], -1)
        fits = [(float(y.mean()), 0.0), tuple(torch.linalg.lstsq(design, y[:, None]).solution.flatten().tolist())]
        exact = [(e1, e2) for e1, e2 in fits if _exact(o, num, den, e1, e2)]
        if not exact or abs(exact[0][0]) < 1e-7 * float(num.abs().max()):
            continue
        e1, e2 = exact[0]
        e1r, e2r = float(f"{e1:.2g}"), float(f"{e2:.2g}")
        added = (
            f"({num_name} + {e1r:g}) / ({den_name} + {e2r:g})"
            if abs(e2r) > 0
            else f"({num_name} + {e1r:g}) / {den_name}"
        )
        fail(
            f"{what}: your values are {added} exactly: a constant is added to the numerator"
            + (" and the denominator" if abs(e2r) > 0 else "")
            + (f" (the same values as unit vectors W_i / √(‖W_i‖² + {e1r:g}))" if e2r == 0 and "Ŵ" in den_name else ""),
            f"an eps added to the numerator changes every value (most for small features); guard only the 0 / 0 of a "
            f"zero column, with torch.where(denominator > 0, {num_name} / denominator, 0) or a clamp_min(1e-30) on the "
            "denominator alone, and add nothing to the numerator",
            code="eps_offsets",
        )
