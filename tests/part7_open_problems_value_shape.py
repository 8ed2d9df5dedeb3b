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
from tests.part7_open_problems_mistakes import name_distribution
from tests.part7_open_problems_signs import sign_structure
from tests.part7_open_problems_value_pairs import value_pairs

__all__ = ["discrete_hint", "discrete_shared", "value_shape"]


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


def discrete_shared(batch: Tensor, present: Tensor) -> None:
    """Fail (code values_shared_over_batch) when values='discrete' gives some (instance, feature) one value for the
    whole batch: a draw of shape [inst feats] expanded over the batch (round BA). Run before the value frequencies,
    which such a draw also moves. A correct draw makes n >= 20 present values of one cell all equal with probability
    3 · 3^-n < 1e-8."""
    n_inst, n_feats = present.shape[1:]
    for i in range(n_inst):
        for f in range(n_feats):
            cell = batch[:, i, f][present[:, i, f]]
            if cell.numel() >= 20 and bool((cell == cell[0]).all()):
                fail(
                    f"with values='discrete' instance {i}, feature {f} has the value {cell[0].item():g} in all "
                    f"{cell.numel()} examples where it is present",
                    "draw a fresh value for every batch element: torch.randint(1, 4, shape) with the full [batch inst "
                    "feats] shape, not a value per (instance, feature) expanded over the batch",
                    code="values_shared_over_batch",
                )


def _ks(sorted_t: Tensor, cdf: Tensor) -> tuple[float, int]:
    """sup |F_n - F| of sorted samples against the model CDF values at them, and where it is largest."""
    n = sorted_t.numel()
    upper = torch.arange(1, n + 1, dtype=torch.float64) / n - cdf
    lower = cdf - torch.arange(0, n, dtype=torch.float64) / n
    gap = torch.maximum(upper, lower)
    at = int(gap.argmax())
    return float(gap[at]), at


def _sub_range(x: Tensor, low: float, high: float, eps: float) -> str:
    """The hint's opening when the sorted values `x` are uniform on a narrower range [a, b] inside [low, high] (a wrong
    constant in the scale or the shift: 0.5 + 0.4 * rand, 0.1 + 0.9 * rand), else "" (round BA)."""
    a, b = float(x[0]), float(x[-1])
    width = high - low
    if b - a > 0.98 * width or b - a < 0.05 * width:
        return ""
    d, _ = _ks(x, (x - a) / (b - a))
    if d > 2 * eps:  # two parameters fitted: twice the bound
        return ""
    ends = [
        f"never below {a:.2g}" if a - low > 0.01 * width else "",
        f"never above {b:.2g}" if high - b > 0.01 * width else "",
    ]
    return (
        f"your values look like U[{a:.2g}, {b:.2g}], evenly spread over a narrower range (present values are "
        f"{' and '.join(e for e in ends if e)}): a wrong constant in the scale or the shift of the draw; "
    )


def _known(x: Tensor) -> str:
    """The hint's opening when the values look like a known draw or hold an atom (`name_distribution`), else ""."""
    looks = name_distribution(x.float(), continuous=True)
    return f"your values look like {looks[0]} ({looks[1]}); " if looks else ""


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
    seen = _sub_range(x, low, high, eps) or _known(x)
    a = torch.atanh(t.clamp(-1 + 1e-7, 1 - 1e-7))
    sigma = float(a.pow(2).mean().sqrt())
    normal = torch.distributions.Normal(0.0, 1.0)
    d_fit, _ = _ks(t, normal.cdf(a / max(sigma, 1e-6)))
    if not seen and d_fit <= 2 * eps:  # one parameter fitted: twice the bound
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
