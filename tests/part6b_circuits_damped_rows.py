"""node_influence: the rows of a damped paths matrix normalised after the series, B_c = (I - c|A|)⁻¹ - I with rows
scaled to sum to 1, instead of normalising the rows of |A| before it. The damping c (chosen by a learner so that the
series converges on the raw |A|) is fitted: a grid over (0, 1/ρ(|A|)), then a golden-section refinement, and the fit
must reproduce the output to the checker's tolerance."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from tests.checking import fail


def _rows_after(A: Tensor, weights: Tensor, c: float) -> Tensor:
    eye = torch.eye(len(A), dtype=torch.float64, device=A.device)
    B = torch.linalg.inv(eye - c * A.abs().double()) - eye
    return weights.double() @ (B / B.sum(-1, keepdim=True).clamp_min(1e-12))


def rows_after_series(out: Tensor, A: Tensor, weights: Tensor) -> None:
    """Fails (code rows_of_B) when `out` is w @ rows(B_c) for some damping c in (0, 1/ρ(|A|))."""
    rho = float(torch.linalg.eigvals(A.abs().double()).abs().max())
    top = 0.999 / rho if rho > 0 else 1e3
    target = out.double()
    err = lambda c: float((_rows_after(A, weights, c) - target).norm())
    grid = [top * k / 200 for k in range(1, 201)]
    k = min(range(len(grid)), key=lambda i: err(grid[i]))
    lo, hi = grid[max(k - 1, 0)] if k else top / 1e4, grid[min(k + 1, len(grid) - 1)]
    g = (math.sqrt(5) - 1) / 2
    for _ in range(60):
        a, b = hi - g * (hi - lo), lo + g * (hi - lo)
        lo, hi = (lo, b) if err(a) < err(b) else (a, hi)
    c = (lo + hi) / 2
    fit = _rows_after(A, weights, c).to(out.dtype)
    if torch.allclose(out, fit, rtol=1e-4, atol=1e-6):
        fail(
            f"the influence equals w @ B' with B' the rows of B = (I - {c:.3g}·|A|)⁻¹ - I scaled to sum to 1: the "
            "paths matrix's rows were normalised after the series (with a damping so that it converges)",
            "normalise the rows of |A| first, Â = |A| / |A|.sum(-1, keepdim=True), then influence = "
            "w @ ((I - Â)⁻¹ - I) as it comes (no damping: the graph has no cycles, so the series ends within n steps)",
            code="rows_of_B",
        )
