"""Part 8, sample_masks: r = (m - g) / (1 - g) following the law of a power or root of a uniform draw.

r = u^q (u uniform on [0, 1]) has the CDF x^(1/q); 1 - u^q has 1 - (1 - x)^(1/q). The pooled draws fit such a law
when their Kolmogorov-Smirnov distance to it is within the DKW bound sqrt(ln(2/δ) / (2n)), δ = 1e-6: draws of that
law pass with probability 1 - δ. The uniform law sits at least 0.25 from every law below (max |x² - x| at x = 1/2),
far beyond the bound (0.0123 for 48000 draws), and the laws below sit at least 0.1 from each other.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

POWERS = {0.5: "r.sqrt() (r ** 0.5)", 2.0: "r ** 2", 1 / 3: "r ** (1/3)", 3.0: "r ** 3"}


def _ks(xs: Tensor, cdf: Tensor) -> float:
    n = xs.numel()
    i = torch.arange(1, n + 1, dtype=torch.float64, device=xs.device)
    return float(torch.maximum((i / n - cdf).abs(), ((i - 1) / n - cdf).abs()).max())


def power_observation(pool: Tensor) -> str:
    """A sentence naming the power of a uniform draw whose law the pooled draws follow, or '' (also when fewer
    than 32000 draws, a bound too loose to assert a law)."""
    xs = pool[torch.isfinite(pool)].double().clamp(0, 1).sort().values
    n = xs.numel()
    if n < 32000:
        return ""
    bound = math.sqrt(math.log(2 / 1e-6) / (2 * n))
    for q, shown in POWERS.items():
        for mirrored in (False, True):
            cdf = 1 - (1 - xs).pow(1 / q) if mirrored else xs.pow(1 / q)
            if _ks(xs, cdf) <= bound:
                form = f"1 - {shown}" if mirrored else shown
                return (
                    f". The draws of every cell together follow the law of {form} with r uniform (the CDF "
                    f"{'1 - (1 - x)' if mirrored else 'x'}^{1 / q:g}, not x): a power or root applied to the uniform "
                    "draw? r itself is uniform: r = torch.rand_like(g), used as it is"
                )
    return ""
