"""generate_features: present values independent along every axis (the uniform kinds).

Under a correct answer the present values are i.i.d. U[low, high], so for two present neighbours a and b along an
axis (features 2j and 2j + 1, instances 0 and 1, examples 2j and 2j + 1: disjoint pairs, so the pairs are independent
of each other) the centred product (a - μ)(b - μ) has mean 0, variance σ⁴ and lies within ±((high - low) / 2)²; its
mean over the n pairs is tested with a Bernstein bound (`checking.bernstein_tolerance`) at the checker's per-test
failure level. For signed values the magnitudes |a|, |b| (U[0, 1]) are tested the same way. A value (or magnitude)
drawn once and broadcast along an axis gives a correlation ρ = 1 there, a value reused as 1 - u gives ρ = -1; both
leave every per-(instance, feature) moment right, and an equality test misses a magnitude shared under a fresh sign.

The products are centred at the sample's own mean and scaled by its own variance (a Pearson correlation), not at the
mean of U[low, high]: independent draws from another law (U[0.5, 0.9], say) have a mean offset δ, and products centred
at the uniform's mean would show a spurious correlation δ²/σ² that this pooled test detects long before the per-cell
mean test names the law (round BA)."""

from __future__ import annotations

import torch
from torch import Tensor

from tests.checking import FAILURE_PROBABILITY, bernstein_tolerance, fail

__all__ = ["value_pairs"]

_AXES = (("features", 2, "[batch inst 1]"), ("instances", 1, "[batch 1 feats]"), ("examples", 0, "[1 inst feats]"))


def _pairs(t: Tensor, dim: int) -> tuple[Tensor, Tensor]:
    n = t.shape[dim]
    even = torch.arange(0, n - 1, 2, device=t.device)
    return t.index_select(dim, even), t.index_select(dim, even + 1)


def value_pairs(batch: Tensor, present: Tensor, kind: str, low: float, high: float, n_tests: int) -> None:
    """Fail (code values_correlated_over_<axis> or magnitudes_correlated_over_<axis>) when present neighbours'
    values, or for signed values their magnitudes, are correlated."""
    readings = [("values", batch.double(), low, high)]
    if low == -high:
        readings.append(("magnitudes", batch.double().abs(), 0.0, high))
    for what, x, lo, hi in readings:
        pooled = x[present]
        if pooled.numel() < 2:
            continue
        mu, var = float(pooled.mean()), float(pooled.var())
        if var <= 0:
            continue
        bound = max(mu - lo, hi - mu) ** 2  # |(a - mu)(b - mu)| for a, b in [lo, hi] (the range was checked before)
        for axis, dim, shape in _AXES:
            (pa, pb), (xa, xb) = _pairs(present, dim), _pairs(x, dim)
            both = pa & pb
            n = int(both.sum())
            if n < 200:
                continue
            mean = float(((xa - mu) * (xb - mu))[both].mean())
            tol = bernstein_tolerance(n, var * var, bound, FAILURE_PROBABILITY / n_tests)
            if abs(mean) <= tol:
                continue
            rho = mean / var
            if rho > 0.9:
                cause = f"the {what[:-1]} is shared along the {axis} (drawn once with shape {shape} and broadcast)"
            elif rho < -0.9:
                cause = f"one {what[:-1]} of each pair is the mirror of the other (u and 1 - u, or -u: a reused draw)"
            else:
                cause = f"the {what} of neighbouring {axis} depend on each other (part of a draw reused or shared)"
            fail(
                f"with values={kind!r}, present neighbouring {axis} have correlated {what}: correlation {rho:.2f} "
                f"over {n} pairs (independent draws stay within ±{tol / var:.2f})",
                f"{cause}. Draw every present value independently: one draw per batch element, instance and "
                "feature, with the full [batch inst feats] shape",
                code=f"{what}_correlated_over_{axis}",
            )
