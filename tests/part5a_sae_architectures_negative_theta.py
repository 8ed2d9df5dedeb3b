"""Read-backs for part 5a's negative-threshold readings of Heaviside / JumpReLU (slips.negative_thresholds).

A wrong forward or gradient at θ < 0 (right at θ > 0) used to come with a list of possible causes. Each listed
cause is now computed from the table's formulas on the probe's own x, θ and grad_output, and only the causes that
reproduce the learner's values (rtol 1e-4, atol 1e-5) are named; otherwise the hint says none of them does."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

Formula = Callable[[Tensor, Tensor, float], Tensor]


def _named(got: Tensor, candidates: dict[str, Tensor], column: str) -> str:
    close = lambda b: torch.allclose(got.detach().to(b.dtype), b, rtol=1e-4, atol=1e-5)
    found = [why for why, want in candidates.items() if close(want)]
    if found:
        return (
            f"see the {column} column of the table: it compares x with θ only. Yours equals {' or '.join(found)} "
            "(read back)"
        )
    return (
        f"see the {column} column of the table: it compares x with θ only, whatever θ's sign. None of "
        f"{'; '.join(candidates)} reproduces your values"
    )


def forward_hint(out: Tensor, fwd: Formula, x: Tensor, th: Tensor, bw: float) -> str:
    cands = {
        "the table's forward with an extra `x > 0` (or a ReLU) beside `x > θ`": fwd(x, th, bw) * (x > 0).to(x.dtype),
        "the forward at abs(θ)": fwd(x, th.abs(), bw),
        "the forward at θ clamped at 0": fwd(x, th.clamp(min=0), bw),
    }
    return _named(out, cands, "forward")


def grad_x_hint(grad: Tensor, dx: Formula, x: Tensor, th: Tensor, bw: float, g: Tensor) -> str:
    cands = {"∂/∂x at abs(θ)": dx(x, th.abs(), bw) * g, "∂/∂x at θ clamped at 0": dx(x, th.clamp(min=0), bw) * g}
    return _named(grad, cands, "∂/∂x")


def grad_th_hint(grad: Tensor, dth: Formula, x: Tensor, th: Tensor, bw: float, g: Tensor, factor: bool) -> str:
    """`factor`: the table's ∂/∂θ carries the factor θ (JumpReLU), so abs(θ) as that factor is a candidate."""
    cands = {
        "∂/∂θ at abs(θ)": dth(x, th.abs(), bw) * g,
        "∂/∂θ at abs(θ) through abs's chain rule (times sign θ)": dth(x, th.abs(), bw) * th.sign() * g,
        "∂/∂θ masked by `x > 0`": dth(x, th, bw) * (x > 0).to(x.dtype) * g,
        "0 (θ clamped at 0 has no gradient)": torch.zeros_like(x),
        "∂/∂θ kept only where θ > 0 (zeroed at θ ≤ 0)": dth(x, th, bw) * (th > 0).to(x.dtype) * g,
    }
    if factor:  # -abs(θ) · K((x - θ)/ε)/ε: the window stays at θ, only the factor loses θ's sign
        cands["∂/∂θ with the factor abs(θ) in place of θ (window still at θ)"] = dth(x, th, bw) * th.sign() * g
    return _named(grad, cands, "∂/∂θ")
