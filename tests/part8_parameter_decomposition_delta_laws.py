"""Part 8 sample_masks: a delta mask whose law is that of the largest (or smallest) of k uniform draws, named.

The law cannot separate a max of k uniforms from r^(1/k) of one uniform (same CDF x^k), so the hint lists both and
the code stays `delta_not_uniform`.

max over C of C fresh uniforms (`torch.rand_like(g).amax(-1)`) follows Beta(C, 1), CDF x^C, mean C / (C + 1); the
min follows 1 - (1 - x)^k. Each law is tested on the pooled draws of one matrix's delta mask with a
Kolmogorov-Smirnov distance within the DKW bound sqrt(ln(2/δ) / (2n)), δ = 1e-6, and only once the draws already
failed the uniform test (so a correct answer never reaches it).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from tests import part8_parameter_decomposition_diagnosis as diag
from tests.checking import fail, uniform_moments_tolerance

POWER = {"max": "r ** (1 / {k})", "min": "1 - (1 - r) ** (1 / {k})"}
HINT = "the delta mask should be uniform on [0, 1] (torch.rand)"
LAWS = {  # name: (CDF of k draws reduced that way, what the reduction is)
    "max": (lambda x, k: x**k, "largest"),
    "min": (lambda x, k: 1 - (1 - x) ** k, "smallest"),
}


def _ks(pool: Tensor, cdf) -> float:
    xs = pool.double().sort().values
    n = xs.numel()
    i = torch.arange(1, n + 1, dtype=torch.float64, device=xs.device)
    c = cdf(xs)
    return float(torch.maximum((i / n - c).abs(), ((i - 1) / n - c).abs()).max())


def reduced_law(pool: Tensor, ks: range) -> tuple[str, int] | None:
    """(reduction, k) whose law the draws in `pool` follow, or None."""
    bound = math.sqrt(math.log(2 / 1e-6) / (2 * pool.numel()))
    fits = [
        (name, k) for name, (cdf, _) in LAWS.items() for k in ks if _ks(pool, lambda x, c=cdf, k=k: c(x, k)) <= bound
    ]
    return fits[0] if len(fits) == 1 else None


def check_delta_law(d: Tensor, layer: int, C: int, n_tests: int) -> None:
    """Delta mask d [n inst]: uniform on [0, 1]; when not, and its draws follow a max / min of k uniforms, say so."""
    tol_mean, tol_sq = uniform_moments_tolerance(d.shape[0], 0.0, 1.0, n_tests)
    mean, sq = d.double().mean(0), d.double().pow(2).mean(0)
    if (((mean - 0.5).abs() > tol_mean) | ((sq - 1 / 3).abs() > tol_sq)).any():
        law = reduced_law(d.flatten(), range(2, 2 * C + 3))
        if law is not None:
            name, k = law
            also = f" ({k} = C, matrix {layer}'s number of subcomponents)" if k == C else ""
            fail(
                f"delta mask {layer}: mean {float(d.mean()):.3f} and mean square {float(d.pow(2).mean()):.3f} over "
                f"all its draws, and they follow the law of the {LAWS[name][1]} of k = {k} independent uniform "
                f"draws{also} (CDF {'x^k' if name == 'max' else '1 - (1 - x)^k'}), where U[0, 1] has mean 0.500 "
                "and mean square 0.333",
                f"two mistakes give that law, and the draws cannot tell them apart: a {name} over an axis of uniform "
                f"draws (over C: torch.rand_like(g).a{name}(-1)?), or one uniform draw transformed "
                f"({POWER[name].format(k=k)} has that law too). The delta mask is one fresh uniform value per "
                "example and instance, torch.rand(g.shape[:-1]), untransformed",
                code="delta_not_uniform",
            )
    diag.check_uniform(d[..., None], f"delta mask {layer}", "inst one", n_tests, HINT, "delta_not_uniform")
