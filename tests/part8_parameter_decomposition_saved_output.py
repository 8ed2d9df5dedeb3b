"""The leaky hard sigmoids: a backward that reads the clamped output y = clamp(x, 0, 1) instead of x.

y cannot tell x = 0 from x < 0, nor x = 1 from x > 1: whatever comparison the backward makes on y, one break point
gets the slope of the clipped side next to it. The break-point probe (x = 0 and 1 exactly) then sees a wrong slope
there, which looks like a `<` / `<=` slip but is not one: no comparison on y can put both sides right. This probe
reads what the forward saved for backward (out.grad_fn.saved_tensors) on points on both sides of [0, 1], where x
and y differ, and names the saved output only when the wrong break points got exactly the slope of the clipped side.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

PROBE = (-0.5, 0.0, 0.5, 1.0, 1.5)  # x and clamp(x, 0, 1) differ at -0.5 and 1.5 only


def _saved(impl: Any, alpha: float, device: torch.device | str) -> tuple[Tensor, ...] | None:
    x = torch.tensor(PROBE, device=device, requires_grad=True)
    try:
        out = impl.apply(x, alpha)
        return tuple(t.detach() for t in out.grad_fn.saved_tensors if isinstance(t, Tensor))
    except Exception:  # no grad_fn, nothing readable saved, or a crash the main check already reported
        return None


def reads_clamped_output(
    impl: Any, name: str, alpha: float, slopes: dict[float, float], device: torch.device | str
) -> str | None:
    """The hint for a backward that saved y = clamp(x, 0, 1) and not x, when each wrong break point (the keys of
    `slopes`, 0.0 and / or 1.0, with the slope found there) got the slope of the clipped side next to it; else None."""
    saved = _saved(impl, alpha, device)
    if not saved:
        return None
    x0 = torch.tensor(PROBE, device=device)
    same = lambda s, t: s.shape == t.shape and s.dtype == t.dtype and torch.equal(s, t)
    if any(same(s, x0) for s in saved) or not any(same(s, x0.clamp(0, 1)) for s in saved):
        return None  # x itself is there (the comparisons may read it), or y is not
    lower = "Lower" in name
    outside = {0.0: alpha if lower else 0.0, 1.0: 0.0 if lower else alpha}  # the slope just past each break point
    if not slopes or any(abs(s - outside[p]) > 1e-6 * max(1.0, alpha) for p, s in slopes.items()):
        return None
    pairs = {0.0: "x = 0 and x < 0", 1.0: "x = 1 and x > 1"}
    where = " (or ".join(pairs[p] for p in sorted(slopes)) + (")" if len(slopes) > 1 else "")
    return (
        f"the backward reads the clamped output y, where {where} look the same: save x "
        "(ctx.save_for_backward(x) in forward, the input, not the clamp's result) and pick the slope from x; no "
        "`<` / `<=` choice on y puts both the break point and the clipped side next to it right"
    )
