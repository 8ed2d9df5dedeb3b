"""generate_features: the shape of the uniform kinds' distribution, beyond its mean and mean square.

Run after the moment checks passed. All present values of one kind are pooled (under a correct answer they are i.i.d.
U[low, high], independent of which entries are present), and their Kolmogorov-Smirnov distance to U[low, high] is
compared with the Dvoretzky-Kiefer-Wolfowitz bound: P(D > eps) <= 2 exp(-2 n eps²), so at eps = sqrt(ln(2 / delta) /
(2 n)) a correct answer fails with probability < delta. With ~40k present values eps is about 0.017, while e.g.
tanh(randn) is 0.05 away from U[-1, 1] (its second moment, 0.394 against 1/3, sits inside the mean-square band).

Also the hint for values='discrete' frequencies off 1/3 (`discrete_hint`): the frequencies seen, and the draw they fit
(1/4, 1/2, 1/4: a sum of two coin flips)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from tests.checking import FAILURE_PROBABILITY, fail
from tests.part7_open_problems_signs import sign_structure
from tests.part7_open_problems_value_pairs import value_pairs

__all__ = ["discrete_hint", "value_shape"]


# Value frequencies of 1, 2, 3 that realistic discrete draws give, with what gives them (compared within 2 points).
_DISCRETE_READINGS = (
    ((0.25, 0.5, 0.25), "1 + the sum of two coin flips (a binomial count), or weights [1, 2, 1] in multinomial"),
    ((0.5, 0.5, 0.0), "torch.randint(1, 3, shape): the upper bound is excluded"),
)


def discrete_hint(values: Tensor) -> str:
    """The hint for values='discrete' frequencies that are not 1/3 each: what the frequencies are and, when they fit a
    known draw, which one."""
    freq = [float((values == v).double().mean()) for v in (1.0, 2.0, 3.0)]
    seen = ", ".join(f"{v}: {f:.1%}" for v, f in zip((1, 2, 3), freq, strict=True))
    reading = next(
        (
            what
            for target, what in _DISCRETE_READINGS
            if all(abs(f - t) < 0.02 for f, t in zip(freq, target, strict=True))
        ),
        None,
    )
    drawn = f": they look like {reading}" if reading else ""
    return (
        f"your present values are {seen}{drawn}; the values 1, 2 and 3 should be equally likely: "
        "torch.randint(1, 4, shape)"
    )


def _ks(sorted_t: Tensor, cdf: Tensor) -> tuple[float, int]:
    """sup |F_n - F| of sorted samples against the model CDF values at them, and where it is largest."""
    n = sorted_t.numel()
    upper = torch.arange(1, n + 1, dtype=torch.float64) / n - cdf
    lower = cdf - torch.arange(0, n, dtype=torch.float64) / n
    gap = torch.maximum(upper, lower)
    at = int(gap.argmax())
    return float(gap[at]), at


def value_shape(batch: Tensor, present: Tensor, kind: str, low: float, high: float, draw: str, n_tests: int) -> None:
    """Fail (code value_shape) when the pooled present values are not distributed as U[low, high]; name a squashed
    normal (tanh / sigmoid of a normal draw) when the values fit one as well as a correct sample fits the uniform.
    First, for signed values, the signs' independence along each axis (`tests.part7_open_problems_signs`), then the
    values' (and magnitudes') independence along each axis (`tests.part7_open_problems_value_pairs`)."""
    sign_structure(batch, present, kind, n_tests)
    value_pairs(batch, present, kind, low, high, n_tests)
    x = batch[present].detach().double().cpu().sort().values
    n = x.numel()
    if n < 1000:
        return
    eps = math.sqrt(math.log(2 * n_tests / FAILURE_PROBABILITY) / (2 * n))
    t = ((2 * x - low - high) / (high - low)).clamp(-1, 1)  # the range mapped onto [-1, 1]
    d, at = _ks(t, (t + 1) / 2)
    if d <= eps:
        return
    outer = float((t.abs() > 0.8).double().mean())
    inner = float((t.abs() < 0.2).double().mean())
    message = (
        f"with values={kind!r} the distribution of the {n} present values is not U[{low:g}, {high:g}]: their "
        f"empirical CDF is {d:.3f} away from the uniform's at {float(x[at]):.3f} (Kolmogorov-Smirnov distance; a "
        f"uniform sample of this size stays within {eps:.3f}); {inner:.1%} of them lie in the middle fifth of the "
        f"range and {outer:.1%} in the outer fifth (20% each for a uniform draw)"
    )
    a = torch.atanh(t.clamp(-1 + 1e-7, 1 - 1e-7))
    sigma = float(a.pow(2).mean().sqrt())
    normal = torch.distributions.Normal(0.0, 1.0)
    d_fit, _ = _ks(t, normal.cdf(a / max(sigma, 1e-6)))
    seen = ""
    if d_fit <= 2 * eps:  # one parameter fitted: twice the bound
        if low == -high:
            scale = "" if high == 1 else f"{high:g} · "
            seen = f"your values look like tanh of a normal draw ({scale}tanh({sigma:.2g} · randn)); "
        else:
            seen = (
                f"your values look like a squashed normal draw ({low:g} + {high - low:g} · sigmoid({2 * sigma:.2g} · "
                "randn), e.g. a sigmoid or tanh of randn); "
            )
    fail(
        message,
        f"{seen}a bounded draw with the right mean is not enough: the values must be spread EVENLY over "
        f"[{low:g}, {high:g}]: {draw}",
        code="value_shape",
    )
