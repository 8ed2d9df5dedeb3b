"""CausalImportance: the slope of each leaky side read at several depths beyond [0, 1].

b_out is set so that every z of one example sits at the same value (-d below 0 for the lower output, 1 + d above
1 for the upper one), and the slope is read off b_out's gradient at each depth d. The reading names what the
depths show: alpha nowhere but 0.01 everywhere (the sigmoid's default: self.alpha not passed), 0 everywhere (no
leak at all), alpha near the range but 0 beyond some depth (the gradient dies outside a range: z clamped before
the sigmoids), or another constant slope (a different alpha).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from tests.checking import fail

DEPTHS = (0.05, 0.3, 0.7, 1.5, 3.5, 7.5, 50.0)  # none on a whole number: a clamp's own boundary is never hit


def _hidden(p: dict[str, Tensor]) -> Tensor:
    """Σ_j w_out GELU(w_in h + b_in) of the first example, [inst C] (z without b_out)."""
    with torch.no_grad():
        h = torch.einsum("bid,icd->bic", p["a"][:1], p["V"])
        return (F.gelu(h[..., None] * p["w_in"] + p["b_in"]) * p["w_out"]).sum(-1)[0]


def _slopes(module: torch.nn.Module, p: dict[str, Tensor]) -> dict[str, list[float]] | None:
    b_out = getattr(module, "b_out", None)
    if not isinstance(b_out, torch.nn.Parameter) or b_out.shape != p["b_out"].shape:
        return None
    saved, hidden, seen = b_out.detach().clone(), _hidden(p), {"lower": [], "upper": []}
    try:
        for which, side in ((0, "lower"), (1, "upper")):
            for d in DEPTHS:
                with torch.no_grad():
                    b_out.copy_((-d if side == "lower" else 1 + d) - hidden)
                out = module(p["a"][:1], p["V"])
                if not isinstance(out, tuple | list) or len(out) != 2 or not isinstance(out[which], Tensor):
                    return None
                if not out[which].requires_grad:
                    return None
                (g,) = torch.autograd.grad(out[which].sum(), [b_out], allow_unused=True)
                if g is None or not torch.allclose(g, g.flatten()[0].expand_as(g), rtol=1e-3, atol=1e-6):
                    return None
                seen[side].append(float(g.flatten()[0]))
    except Exception:  # a probe only: the checks that follow report the failure
        return None
    finally:
        with torch.no_grad():
            b_out.copy_(saved)
    return seen


def ci_slopes(module: torch.nn.Module, p: dict[str, Tensor], alpha: float) -> None:
    """Fails naming the slope pattern of the first leaky side whose slope is not alpha at every depth."""
    seen = _slopes(module, p)
    if seen is None:
        return
    near = lambda s, v: abs(s - v) <= 1e-3 * max(alpha, abs(v))
    for side, slopes in seen.items():
        if all(near(s, alpha) for s in slopes):
            continue
        other = "Upper" if side == "upper" else "Lower"
        zs = [(-d if side == "lower" else 1 + d) for d in DEPTHS]
        where = f"{'below 0' if side == 'lower' else 'above 1'} (z = {zs[0]:g}, {zs[1]:g}, …, {zs[-1]:g})"
        observed = ", ".join(f"{s:.4g} at z = {z:g}" for s, z in zip(slopes, zs, strict=True))
        what = f"the gradient of the {side}-leaky importances"
        if all(near(s, 0.01) for s in slopes):
            fail(
                f"{what} {where} has slope 0.01 at every depth, expected alpha = {alpha:g} (the module's "
                "self.alpha); 0.01 is the sigmoid's default alpha",
                f"pass self.alpha to both sigmoids: {other}LeakyHardSigmoid.apply(z, self.alpha)",
                code="alpha_not_passed",
            )
        if all(near(s, 0.0) for s in slopes):
            fail(
                f"{what} {where} has slope 0 at every depth, expected alpha = {alpha:g}: no leak at all",
                f"the leak is missing: a plain clamp (torch.clamp, z.clamp(0, 1)) where {other}LeakyHardSigmoid."
                "apply(z, self.alpha) belongs, or alpha = 0 passed to it?",
                code="no_leak",
            )
        first = next(i for i, s in enumerate(slopes) if not near(s, alpha))
        if first > 0 and all(near(s, 0.0) for s in slopes[first:]):
            fail(
                f"{what} {where} has slope alpha = {alpha:g} at z = {zs[0]:g} … {zs[first - 1]:g} but 0 from "
                f"z = {zs[first]:g} on ({observed}): the gradient dies outside a range, as a clamp of the input gives",
                "z (the sigmoids' input) clamped to a range before the sigmoids (e.g. z.clamp(-1, 2) 'for stability')"
                f"? Feed z to {other}LeakyHardSigmoid.apply(z, self.alpha) unclamped: the sigmoids are the only "
                "clamp, and their leak needs z's value outside [0, 1]",
                code="input_clamped",
            )
        if all(near(s, slopes[0]) for s in slopes):
            fail(
                f"{what} {where} has slope {slopes[0]:.4g} at every depth, expected alpha = {alpha:g} (the "
                "module's self.alpha)",
                f"a different alpha: pass self.alpha (not a constant) to both sigmoids: {other}LeakyHardSigmoid."
                "apply(z, self.alpha)",
                code="alpha_value",
            )
        fail(
            f"{what} {where} has slopes {observed}, expected alpha = {alpha:g} at every depth",
            f"the slope beyond the range must be self.alpha whatever z is: feed z itself to {other}LeakyHardSigmoid."
            "apply(z, self.alpha) (no transformation of z in between, no clamp of it)",
            code="slope_varies",
        )
