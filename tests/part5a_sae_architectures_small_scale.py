"""Part 5a: fraction_variance_explained at a small scale the contract allows.

The FVE is scale-free: h and h_rec both times 1e-3 give the same values. A division guard that changes the answer
for small but valid inputs (`total.clamp(min=1)`, `max(total, c)`, `total + 1e-2`) is right on the main inputs,
whose totals are far above 1, and wrong here, where every instance's total is below 1e-3. The reading recovers the
total the learner divided by, 1 - fve = residual / total  =>  total_used = residual / (1 - fve), and names a clamp
(one constant total on every instance, above the true ones) or an added constant (total_used - total the same on
every instance), read back on the probe's own inputs; otherwise it states the observation.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from tests.checking import fail

SCALE = 1e-3


def fve_small_scale(impl: Callable, h: Tensor, h_rec: Tensor, reference: Callable) -> None:
    """Call `impl` on (h, h_rec) · SCALE and compare with the reference there."""
    hs, rs = h * SCALE, h_rec * SCALE
    want = reference(hs, rs)
    try:
        got = impl(hs.clone(), rs.clone())
    except Exception:  # an error at small inputs alone: left to the main comparison's wording
        return
    if not isinstance(got, Tensor) or got.shape != want.shape:
        return
    got = got.detach().to(want.dtype)
    if torch.allclose(got, want, rtol=1e-4, atol=1e-5):
        return
    residual = (hs - rs).pow(2).sum((0, 2)).double()
    total = (hs - hs.mean(0)).pow(2).sum((0, 2)).double()
    used = residual / (1 - got.double())
    seen = (
        f"fraction_variance_explained is right on the main inputs but not on the same inputs times {SCALE:g} "
        f"(the FVE is scale-free: the values should not change). Per instance, expected {want.tolist()}, "
        f"got {got.tolist()}; the totals Σ(h - mean)² there are {[f'{t:.3g}' for t in total.tolist()]}"
    )
    close = lambda a, b: bool(torch.allclose(a, b, rtol=1e-3, atol=0))
    c = float(used.mean())
    if c > float(total.max()) and close(used, torch.full_like(used, c)):
        fail(
            f"{seen}. Read back: residual / (1 - yours) = {c:.4g} on every instance, so the total was replaced by "
            f"{c:.4g} (a guard such as total.clamp(min={c:.3g}) or max(total, {c:.3g}))",
            "divide by the total itself: a guard may only avoid a division by exactly 0 (e.g. a tiny eps such as "
            "1e-12, or a where on total == 0); a floor that bites for small but valid inputs changes the answer",
            code="total_guard",
        )
    extra = used - total
    e = float(extra.mean())
    if e > 0 and close(extra, torch.full_like(extra, e)):
        fail(
            f"{seen}. Read back: residual / (1 - yours) = total + {e:.3g} on every instance: a constant {e:.3g} is "
            "added to the total",
            f"divide by the total alone: an added {e:.3g} is not negligible for small but valid inputs (use a tiny "
            "eps such as 1e-12, or none)",
            code="total_guard",
        )
    fail(
        seen,
        "compute 1 - Σ(h - h_rec)² / Σ(h - mean(h))² with no floor or offset that depends on the scale",
        code="small_scale",
    )
