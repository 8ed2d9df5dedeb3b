"""Measurements that name mistakes nobody listed, for part 5a's checkers (`tests.part5a_sae_architectures`).

* JumpReLU: the θ-gradient's window cut at θ (`HALF_WINDOW`, a catalogue entry).
* Heaviside and JumpReLU: where the learner's threshold pseudo-derivative is non-zero, measured at two bandwidths
  on a fine grid around θ: the bandwidth unused (the same gradient at both), a window of the wrong width or shape,
  or one far narrower than ε.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

BANDWIDTH = 0.1

# JumpReLU's θ-gradient with the window cut at θ: the output saved in forward instead of x (0 below θ, so
# K((out - θ)/ε) vanishes there) gives exactly this; so does masking the window with the forward's gate.
HALF_WINDOW = (
    "half_window",
    "your θ-gradient is right above θ but zero just below it: the window K((x - θ)/ε) must use the input x on "
    "both sides of θ (save x in forward, not the output; don't multiply the window by the gate 1[x > θ])",
    lambda x, th, bw: -th * (((x - th) / bw).abs() < 0.5).to(x.dtype) * (x > th).to(x.dtype) / bw,
)


def _window(impl: Any, bandwidth: float) -> tuple[float, float, Tensor] | None:
    """(largest |x - θ|, largest |gradient|, the gradient) where the threshold gradient of `impl` is non-zero,
    θ = 1, on a grid up to 8 plus points down to 1e-8 from θ (so a window far narrower than ε is seen too); None
    when it is zero everywhere (or the learner's backward fails here)."""
    fine = torch.logspace(-8, -1, 200, dtype=torch.float64)
    d = torch.cat([torch.linspace(-8, 8, 16001, dtype=torch.float64)[:-1] + 3e-4, fine, -fine])  # no edge hit
    x, th = (1.0 + d).requires_grad_(True), torch.ones_like(d).requires_grad_(True)
    try:
        (grad,) = torch.autograd.grad(impl.apply(x, th, bandwidth).sum(), th, allow_unused=True)
    except Exception:  # the learner's backward failing on these inputs: say nothing about the window
        return None
    if grad is None or not (grad.detach() != 0).any():
        return None
    on = grad.detach() != 0
    return float(d[on].abs().max()), float(grad.detach().abs().max()), grad.detach()


def _windows(impl: Any) -> dict:
    return {eps: _window(impl, eps) for eps in (BANDWIDTH, 4 * BANDWIDTH)}


def _ignores_bandwidth(measured: dict) -> str | None:
    """A hint when the threshold gradient is identical at two bandwidths: then the ε passed in is unused."""
    if any(m is None for m in measured.values()):
        return None
    (w1, p1, g1), (_, _, g4) = measured[BANDWIDTH], measured[4 * BANDWIDTH]
    if not torch.equal(g1, g4):
        return None
    return (
        f"your threshold gradient is identical at ε = {BANDWIDTH:g} and ε = {4 * BANDWIDTH:g}: non-zero for "
        f"|x - θ| up to ≈ {w1:.2g}, height ≈ {p1:.3g} (what a bandwidth of about {2 * w1:.2g} would give): the "
        "bandwidth passed to apply is unused (a hard-coded value?). Store it in forward (ctx.bandwidth = "
        "bandwidth) and use it in backward: -(factor/ε) K((x - θ)/ε)"
    )


def _window_hint(measured: dict) -> str:
    """Describe where the learner's threshold gradient is non-zero, measured at two bandwidths."""
    seen = ", ".join(f"|x - θ| up to {w[0]:.3g} at ε = {e:g}" for e, w in measured.items() if w is not None)
    base = f"your threshold gradient is non-zero outside the window |x - θ| < ε/2 ({seen}): "
    if measured[BANDWIDTH] is None or measured[4 * BANDWIDTH] is None:
        return base + "K is the rectangle 1[|u| < 1/2] with u = (x - θ)/ε"
    w1, w4 = measured[BANDWIDTH][0], measured[4 * BANDWIDTH][0]
    if min(w1, w4) > 7.9:
        return base + "it has no cutoff at all on |x - θ| <= 8: K is the rectangle 1[|u| < 1/2], zero elsewhere"
    if abs(w4 / w1 - 0.25) < 0.05:
        return base + (
            f"the window is ≈ {2 * w1 * BANDWIDTH:.2g}/ε wide and shrinks as ε grows, instead of ε wide: is u "
            "computed as (x - θ) · ε instead of (x - θ) / ε?"
        )
    if abs(w4 / w1 - 4) < 0.2:
        return base + (
            f"the window grows with ε but is {2 * w1 / BANDWIDTH:.2g}·ε wide instead of ε: K is 1[|u| < 1/2]"
        )
    return base + "K is the rectangle 1[|u| < 1/2] with u = (x - θ)/ε, zero elsewhere"


def threshold_window(impl: Any, grad_th: Tensor, outside: bool) -> tuple[str, str] | None:
    """(code, hint) from the threshold gradient measured at two bandwidths, for a wrong gradient: ε unused (the
    same gradient at both), non-zero outside the window, or 0 on every test input yet non-zero very close to θ
    (a window far narrower than ε). None when none of these is seen (then the catalogue decides; "None or
    zeros" only fits a gradient that is 0 everywhere)."""
    measured = _windows(impl)
    ignored = _ignores_bandwidth(measured)
    if ignored is not None:
        return "bandwidth_ignored", ignored
    if outside:
        return "kernel_shape", _window_hint(measured)
    if (grad_th != 0).any() or measured[BANDWIDTH] is None or measured[4 * BANDWIDTH] is None:
        return None
    seen = ", ".join(f"|x - θ| up to {m[0]:.2g} (height {m[1]:.3g}) at ε = {e:g}" for e, m in measured.items())
    return "window_too_narrow", (
        f"your threshold gradient is 0 on every test input but non-zero very close to θ ({seen}): the window is "
        "far narrower than ε. K is 1[|u| < 1/2] with u = (x - θ)/ε: is ε used as passed, and u divided by it?"
    )
