"""Generators: the shape of pooled present values whose quarters of [low, high] are monotone or crowd the middle,
described after the value law has failed. A law is named only when read back on every value: the empirical CDF of
m = (v - low) / (high - low) is within 3 / sqrt(n) + 0.005 of the candidate's CDF everywhere (Kolmogorov-Smirnov: a
sample of the candidate exceeds 3 / sqrt(n) with probability 2e^-18). Candidates: a power of rand, rand ** k, whose
CDF is t^(1/k) (the exponent from the MLE a = -1 / mean(log m)), which for k = 1/2, 1/3 is also the max of 2, 3
draws; the mean of two draws (a triangular law); for values that crowd the middle, a normal draw squashed by a
sigmoid (logit(m) is N(0, 1)) or shifted and scaled into the range (m standardised by its own mean and spread is
N(0, 1): randn min-max rescaled, or mean + sd · randn). Otherwise only the observed quarters are reported."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def _within(ecdf: Tensor, cdf: Tensor) -> bool:
    n = ecdf.numel()
    return float((ecdf - cdf).abs().max()) < 3 / math.sqrt(n) + 0.005


def _power_law(m: Tensor, ecdf: Tensor) -> str | None:
    a = float(-1 / m.log().mean())
    if not _within(ecdf, m**a):
        return None
    k = 1 / a
    law = f"rand ** {k:.2g}"
    for draws in (2, 3):
        if abs(a - draws) < 0.05 * draws:
            law += f" (the same law as the max of {draws} draws)"
    return f"(v - low) / width has P(≤ t) = t^{a:.2f} (read back on every value), the law of {law}"


def _triangular(m: Tensor, ecdf: Tensor) -> str | None:
    cdf = torch.where(m < 0.5, 2 * m**2, 1 - 2 * (1 - m) ** 2)
    if not _within(ecdf, cdf):
        return None
    return "they follow the triangular law of the mean of two draws, (rand + rand) / 2 (read back on every value)"


def _normal_cdf(z: Tensor) -> Tensor:
    return 0.5 * (1 + torch.erf(z / math.sqrt(2)))


def _normal_like(m: Tensor, ecdf: Tensor, low: float, high: float) -> str | None:
    """Middle-heavy values read back as a normal draw: through a sigmoid, or shifted and scaled (after the fact)."""
    t = m.clamp(1e-12, 1 - 1e-12)
    if _within(ecdf, _normal_cdf(torch.log(t / (1 - t)))):
        span = "" if (low, high) == (0.0, 1.0) else f", mapped onto [{low:g}, {high:g}]"
        return f"logit((v - low) / width) is N(0, 1) (read back on every value): torch.sigmoid(torch.randn(...)){span}"
    mean, sd = float(m.mean()), float(m.std())
    if sd > 0 and _within(ecdf, _normal_cdf((m - mean) / sd)):
        return (
            f"they are bell-shaped like a normal draw (mean {low + mean * (high - low):.3g}, spread "
            f"{sd * (high - low):.3g}; read back on every value): a normal draw shifted and scaled into the range "
            "(randn min-max rescaled, (z - z.min()) / (z.max() - z.min()), or a mean + spread · randn)"
        )
    return None


def middle_normal_reading(values: Tensor, low: float, high: float, q: list[float]) -> str | None:
    """For middle-heavy quarters q, the normal-like reading alone (tried before the gap reading: a normal draw's thin
    tails look like gaps)."""
    if not min(q[1], q[2]) > max(q[0], q[3]):
        return None
    m = ((values.double().flatten().cpu() - low) / (high - low)).clamp(1e-12, 1).sort().values
    n = m.numel()
    if n < 100 or _triangular(m, torch.arange(1, n + 1, dtype=torch.float64) / n):
        return None
    middle = _normal_like(m, torch.arange(1, n + 1, dtype=torch.float64) / n, low, high)
    if middle is None:
        return None
    shown = ", ".join(f"{x:.0%}" for x in q)
    return f"values crowd the middle of the range (quarters {shown}): {middle}, where a plain rand belongs; "


def shape_reading(values: Tensor, low: float, high: float, q: list[float]) -> str | None:
    """The shape phrase for monotone or middle-heavy quarters q, or None for other shapes."""
    shown = ", ".join(f"{x:.0%}" for x in q)
    if q[0] > q[1] > q[2] > q[3]:
        seen = f"values pile up near {low:g} (quarters {shown})"
    elif q[0] < q[1] < q[2] < q[3]:
        seen = f"values pile up near {high:g} (quarters {shown})"
    elif min(q[1], q[2]) > max(q[0], q[3]):
        seen = f"values crowd the middle of the range (quarters {shown})"
    else:
        return None
    m = ((values.double().flatten().cpu() - low) / (high - low)).clamp(1e-12, 1).sort().values
    n = m.numel()
    if n >= 100:
        ecdf = torch.arange(1, n + 1, dtype=torch.float64) / n
        found = _power_law(m, ecdf) or _triangular(m, ecdf)
        if found:
            return f"{seen}: {found}, where a plain rand belongs; "
        middle = _normal_like(m, ecdf, low, high) if min(q[1], q[2]) > max(q[0], q[3]) else None
        if middle:
            return f"{seen}: {middle}, where a plain rand belongs; "
    return f"{seen}; no power of rand or mean of two draws reproduces them; "
