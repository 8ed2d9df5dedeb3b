"""generate_dataset: value distributions a present feature may wrongly follow, beyond the catalogue's
(`tests.part4_double_descent_mistakes.value_candidates`): a power of a uniform, √U, U^(1/3) or U²
(torch.rand(...).sqrt(), ** 2). The check reads the present values relative to the largest one in their example;
for U^a these are again U^a (given the largest, the others are uniform below it), with mean 1 / (a + 1): 2/3 for
√U, 3/4 for the cube root, 1/3 for U², far from U[0, 1]'s 1/2. A law is named only when the sample matches it in
its mean *and* its whole distribution (a two-sample Kolmogorov-Smirnov distance within the noise of the two samples):
another law with the same mean (exponential draws look like a product of uniforms there) is not given its name.
Values that never come near 0 relative to their example's largest one have a floor or an offset."""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor

import tests.part4_double_descent_mistakes as mistakes


@functools.lru_cache(maxsize=2)  # fixed generators: the same samples at every call, drawn once
def value_candidates(shape: tuple[int, ...], p: float) -> list[tuple[str, str, Tensor]]:
    """The catalogue's (code, hint, ratio sample) value laws, then the powers of a uniform, drawn with a fixed seed."""
    g = torch.Generator().manual_seed(1)
    mask = torch.rand(shape, generator=g, dtype=torch.float64) < p
    u = torch.rand(shape, generator=g, dtype=torch.float64)
    powers = [
        (
            "power_values",
            f"the values look like U^{name} draws ({code}): each present value is a plain torch.rand draw, U[0, 1], "
            "with no power or root applied before normalising",
            mistakes.ratio_sample(torch.where(mask, u**power, 0.0)),
        )
        for name, code, power in (
            ("(1/2)", "torch.rand(...).sqrt()", 0.5),
            ("(1/3)", "torch.rand(...) ** (1 / 3)", 1 / 3),
            ("2", "torch.rand(...) ** 2", 2.0),
        )
    ]
    few = (max(shape[0] // 3, 1), *shape[1:])  # the two laws below: a third of the examples is plenty
    mask = mask[: few[0]]
    exponential = (
        "exponential_values",
        "the values look like exponential draws (-torch.rand(...).log(), torch.empty(...).exponential_()): each "
        "present value is a plain torch.rand draw, U[0, 1]",
        mistakes.ratio_sample(torch.where(mask, -torch.rand(few, generator=g, dtype=torch.float64).log(), 0.0)),
    )
    summed = (
        "summed_values",
        "the values look like a sum or mean of two uniforms ((rand + rand) / 2, triangular on [0, 1]): each present "
        "value is one torch.rand draw, U[0, 1]",
        mistakes.ratio_sample(torch.where(mask, torch.rand(2, *few, generator=g, dtype=torch.float64).mean(0), 0)),
    )
    return mistakes.value_candidates(shape, p) + powers + [exponential, summed]


SQUARED_HINT = (
    "the values look like a product or square of uniforms (rand * rand, rand ** 2), or like exponential draws "
    "(-rand.log(), exponential_()), whose values relative to their example's largest look alike: each present "
    "value is one torch.rand draw, U[0, 1]"
)
KS_LEVEL = 1e-6  # a sample of the candidate's own law is refused its name with at most this probability


def _ks_distance(a: Tensor, b: Tensor) -> float:
    """Two-sample Kolmogorov-Smirnov distance: the largest gap between the two empirical CDFs."""
    a, b = a.double().sort().values, b.double().sort().values
    x = torch.cat([a, b])
    gap = torch.searchsorted(a, x, right=True) / len(a) - torch.searchsorted(b, x, right=True) / len(b)
    return float(gap.abs().max())


def matching_law(sample: Tensor, tol_mean: float, shape: tuple[int, ...], p: float) -> tuple[str, str] | None:
    """(code, hint) of the wrong value law the ratio `sample` follows, or None: a candidate law whose mean and whole
    distribution match (DKW bound for two samples), else a floor when no value comes near 0."""
    mean, n = sample.mean().item(), sample.numel()
    for code, hint, s in value_candidates(shape, p):
        if abs(s.mean().item() - mean) > tol_mean + mistakes.tolerance(s.numel(), 1 / 12):
            continue
        bound = math.sqrt(math.log(2 / KS_LEVEL) / 2 * (n + s.numel()) / (n * s.numel()))
        if _ks_distance(sample, s) <= bound:
            return code, SQUARED_HINT if code == "squared_values" else hint
    floor = float(sample.min())
    # U[0, 1] values: P(every one of n >= 1000 ratios is above 0.02) <= 0.98^1000 < 2e-9
    if n >= 1000 and floor > 0.02:
        return "value_floor", (
            f"no present value is below {floor:.3g} of the largest one in its example, where U[0, 1] values come "
            "arbitrarily close to 0: the values have a floor or an offset (rand + c, a + (b - a) * rand, "
            "clamp_min(c)); draw them from U[0, 1] with torch.rand, with nothing added"
        )
    return None
