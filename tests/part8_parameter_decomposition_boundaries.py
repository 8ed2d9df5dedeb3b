"""The leaky hard sigmoids at the break points themselves: x = 0 and x = 1 exactly.

The exercise's table gives the slope "1 on [0, 1]", a closed interval, and the solution (`x < 0` / `x <= 1`,
`x > 1` / `x >= 0`) follows it, as does autograd's own clamp (its gradient is 1 at both ends). The generic grid
of the main check stays away from 0 and 1 (so the slope regions are unambiguous there); this probe adds the
break points and names the one that landed on the wrong side (`x < 1` where `x <= 1` was meant, ...).
-0.0 compares equal to 0 in every comparison, so it gets the slope at 0.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from tests import part8_parameter_decomposition_diagnosis as diag
from tests import part8_parameter_decomposition_saved_output as saved_output
from tests.checking import fail

POINTS = (-0.0, 0.0, 1.0)


def closed_interval(impl: Any, name: str, alpha: float, device: torch.device | str) -> None:
    """Slope 1 at x = 0 and at x = 1 (the closed [0, 1] of the table); the forward there is x itself."""
    x0 = torch.tensor(POINTS, device=device)
    x = x0.clone().requires_grad_(True)
    try:
        out = impl.apply(x, alpha)
    except Exception:  # the main check already ran this code on other inputs: a crash here says nothing new
        return
    if not isinstance(out, Tensor) or out.shape != x0.shape or not out.requires_grad:
        return
    grad = diag.backward_grad(out, x, torch.ones_like(x0), name)
    if not isinstance(grad, Tensor) or grad.shape != x0.shape:
        return
    slope = grad.detach().float().cpu()
    wrong = [p for p, s in zip(POINTS, slope.tolist(), strict=True) if abs(s - 1) > 1e-6]
    if not wrong:
        return
    at = sorted({1.0 if p == 1 else 0.0 for p in wrong})
    got = {p: s for p, s in zip(POINTS, slope.tolist(), strict=True)}
    lower = "Lower" in name
    seen = ", ".join(f"{_what(got[p], alpha)} at x = {p:g}" for p in at)
    fixes = []
    if 0.0 in at:
        fixes.append(
            "x = 0 belongs to [0, 1]: the leak is for x < 0 only"
            if lower
            else "x = 0 belongs to [0, 1]: slope 1 for x >= 0"
        )
    if 1.0 in at:
        fixes.append(
            "x = 1 belongs to [0, 1]: slope 1 for x <= 1"
            if lower
            else "x = 1 belongs to [0, 1]: the leak is for x > 1 only"
        )
    message = (
        f"the gradient of {name} at the break points is wrong: your slope is {seen}, expected 1 (the table's "
        "slope on [0, 1], a closed interval)"
    )
    if (hint := saved_output.reads_clamped_output(impl, name, alpha, {p: got[p] for p in at}, device)) is not None:
        fail(message, hint, code="saved_output")
    fail(
        message,
        f"a comparison puts a break point on the wrong side ({'; '.join(fixes)}): "
        "check `<` against `<=` and `>` against `>=` in your backward",
        code="boundary",
    )


def _what(s: float, alpha: float) -> str:
    if abs(s) <= 1e-6:
        return "0"
    if abs(s - alpha) <= 1e-6 * max(1.0, alpha):
        return f"alpha ({alpha:g})"
    return f"{s:.4g}"
