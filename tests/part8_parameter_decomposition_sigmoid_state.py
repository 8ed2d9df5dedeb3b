"""The leaky hard sigmoids: what the backward reads, and where it reads it from.

- What was saved: a backward that gets x clipped (x.relu(), x.clamp(max=1)) sees every x on the clipped side as the
  clip value, so its slope there is that of the clip point. Read from the Function's ctx (out.grad_fn) before the
  backward runs, only when the gradient is wrong.
- Where alpha lives: alpha stored on the class or a global (not on ctx) is the LAST forward's alpha. Two forwards
  with different alphas, then the first one's backward, must leak with the first alpha.
- Narrow bands: the main grid steps 0.085, so a break moved by a small t (x < alpha for x < 0) only shows at x = 0.
  A fine grid inside (0, 1) names the whole interval with the wrong slope and where its edge is, instead of a
  `<` / `<=` slip at one point.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from tests import part8_parameter_decomposition_diagnosis as diag
from tests import part8_parameter_decomposition_grad_output as grad_output
from tests import part8_parameter_decomposition_named as fresh
from tests.checking import fail

ALPHAS = (0.03, 0.2)  # the first is the checker's ALPHA; the second far from it


def backward_grad(out: Tensor, x: Tensor, g: Tensor, name: str, right: Tensor) -> Tensor | None:
    """diag.backward_grad, naming a clipped x saved for backward when the gradient is wrong."""
    try:
        saved = tuple(t.detach() for t in out.grad_fn.saved_tensors if isinstance(t, Tensor))
    except Exception:  # no grad_fn, or a Function that saves nothing readable
        saved = ()
    grad = diag.backward_grad(out, x, g, name)
    if not isinstance(grad, Tensor) or grad.shape != right.shape or torch.allclose(grad, right, atol=1e-6):
        return grad
    x0 = x.detach()
    if any(s.shape == x0.shape and torch.equal(s, x0) for s in saved):
        return grad
    g0, gr = g.detach(), grad.detach()
    clips = (  # (saved, the side it flattens, what it is); slope 1 at the clip points 0 and 1 (the closed [0, 1])
        (x0.clamp(min=0), x0 < 0, "at 0 (x.relu() or x.clamp(min=0): every negative x reads as 0, slope 1 there)"),
        (x0.clamp(max=1), x0 > 1, "at 1 (x.clamp(max=1): every x above 1 reads as 1, slope 1 there)"),
    )
    for clipped, side, what in clips:
        if not any(s.shape == x0.shape and s.dtype == x0.dtype and torch.equal(s, clipped) for s in saved):
            continue
        as_clipped = torch.where(side, g0, right)  # the clipped side gets the slope at the clip point
        if torch.allclose(gr, as_clipped, rtol=1e-4, atol=1e-6):
            fail(
                f"the gradient of {name} is wrong outside [0, 1], and what forward saved for backward is x clipped "
                f"{what}",
                "the backward sees x clipped, not x: save x itself for backward (ctx.save_for_backward(x)) and "
                "pick the slope from it",
                code="saved_clipped",
            )
    return grad


def after_values(impl: Any, name: str, x0: Tensor) -> None:
    """After the main value checks: grad_output not edited in place, alpha kept per call, no narrow band with a wrong
    slope, then the break points."""
    grad_output.grad_output_kept(impl, name, x0, ALPHAS[0])
    alpha_on_ctx(impl, name, x0.device)
    narrow_band(impl, name, ALPHAS[0], x0.device)
    fresh.default_alpha(impl, name, x0)


def _slopes(impl: Any, x0: Tensor, alpha: float) -> tuple[Tensor, Tensor] | None:
    x = x0.clone().requires_grad_(True)
    try:
        out = impl.apply(x, alpha)
    except Exception:  # the main check already ran this code: a crash here says nothing new
        return None
    if not isinstance(out, Tensor) or out.shape != x0.shape or not out.requires_grad:
        return None
    return out, x


def alpha_on_ctx(impl: Any, name: str, device: torch.device | str) -> None:
    """Forward with ALPHAS[0], forward with ALPHAS[1], then the first one's backward: its leak must be ALPHAS[0]."""
    lower = "Lower" in name
    leaky = torch.tensor([-1.3, -0.45] if lower else [1.45, 2.3], device=device)
    first, second = _slopes(impl, leaky, ALPHAS[0]), _slopes(impl, leaky, ALPHAS[1])
    if first is None or second is None:
        return
    try:
        grad = torch.autograd.grad(first[0].sum(), (first[1],), allow_unused=True)[0]
    except Exception:
        return
    if not isinstance(grad, Tensor) or grad.shape != leaky.shape:
        return
    if torch.allclose(grad, torch.full_like(grad, ALPHAS[1]), rtol=1e-4) and ALPHAS[1] != ALPHAS[0]:
        fail(
            f"two calls {name}.apply(x1, {ALPHAS[0]}) and {name}.apply(x2, {ALPHAS[1]}), then the first one's "
            "backward: "
            f"it leaks with slope {ALPHAS[1]} (the second call's alpha), expected {ALPHAS[0]}",
            "alpha stored outside ctx (on the class or a global): save it on ctx (ctx.alpha = alpha in forward, "
            "read ctx.alpha in backward), so each call's backward uses its own alpha",
            code="alpha_outside_ctx",
        )


def narrow_band(impl: Any, name: str, alpha: float, device: torch.device | str) -> None:
    """Slope 1 on [0, 1], on a grid of step 1/400; only wrong points strictly inside (0, 1) fail here (a slip at
    x = 0 or 1 alone is the break points' check)."""
    xs = torch.linspace(0, 1, 401, device=device)
    got = _slopes(impl, xs, alpha)
    if got is None:
        return
    try:
        grad = torch.autograd.grad(got[0].sum(), (got[1],), allow_unused=True)[0]
    except Exception:
        return
    if not isinstance(grad, Tensor) or grad.shape != xs.shape:
        return
    wrong = (grad - 1).abs() > 1e-5
    if not wrong[1:-1].any():
        return
    idx = wrong.nonzero().squeeze(-1).tolist()
    pts, slopes = xs.tolist(), grad.tolist()
    values = sorted({round(slopes[i], 6) for i in idx})
    what = " or ".join(_name(v, alpha) for v in values[:3])
    contiguous = idx == list(range(idx[0], idx[-1] + 1))
    if contiguous and idx[0] == 0 and idx[-1] < len(pts) - 1:
        lo, hi = pts[idx[-1]], pts[idx[-1] + 1]
        where, edge, at = f"[0, t) with t between {lo:.4g} and {hi:.4g}", "the break is at t instead of 0", (lo, hi)
    elif contiguous and idx[-1] == len(pts) - 1 and idx[0] > 0:
        lo, hi = pts[idx[0] - 1], pts[idx[0]]
        where, edge, at = f"(t, 1] with t between {lo:.4g} and {hi:.4g}", "the break is at t instead of 1", (lo, hi)
    else:
        where = f"{len(idx)} points of (0, 1) between x = {pts[idx[0]]:.4g} and {pts[idx[-1]]:.4g}"
        edge, at = "a threshold or comparison off the region edges 0 and 1", None
    guess = ""
    if at is not None and any(at[0] - 1e-6 <= a <= at[1] + 1e-6 for a in (alpha, 1 - alpha)):
        guess = (
            " (t = alpha: the leak's slope used as the threshold? e.g. x < alpha where x < 0 was meant, "
            "or x > 1 - alpha)"
        )
    fail(
        f"the gradient of {name} inside [0, 1] is wrong on a whole interval: your slope is {what} on {where}, "
        "expected 1 on all of [0, 1]",
        f"{edge}{guess}: the slope is 1 for 0 <= x <= 1; compare x with 0 and 1 only",
        code="band_slope",
    )


def _name(s: float, alpha: float) -> str:
    if abs(s) <= 1e-6:
        return "0"
    if abs(s - alpha) <= 1e-5 * max(1.0, alpha):
        return f"alpha ({alpha:g})"
    return f"{s:.4g}"
