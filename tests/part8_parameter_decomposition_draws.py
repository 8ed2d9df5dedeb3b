"""Part 8, sample_masks: statistics of r = (mask - g) / (1 - g) that name how the draws were altered.

* draws ordered along C (sorted, or a mean that climbs with the position along C): r depends on its position;
* draws clamped away from 0 or 1 (r.clamp(min=0.1)): no draw beyond the clamp and a pile of draws at it.
Run after `behaviour.r_span` (whose g-dependent ranges are named first).
"""

from __future__ import annotations

import math

from torch import Tensor

from tests import part8_parameter_decomposition_behaviour as behaviour
from tests.checking import fail
from tests.part8_parameter_decomposition_structure_slips import masks_call  # noqa: F401  (used by the checker)

WHAT = "r = (mask - g) / (1 - g) of matrix {}"
ROUNDING = 1e-6  # r is recovered from the mask in float32: an ordered pair may come back out of order by this much


def r_draws(r: Tensor, g: Tensor, layer: int) -> None:
    behaviour.r_span(r, g, layer)
    ordered_over_c(r, layer)
    clamped(r, layer)


def ordered_over_c(r: Tensor, layer: int) -> None:
    """Fails (code sorted_over_c) when most rows [n inst] of r are in ascending (or descending) order along C.
    Independent continuous draws put a row of C ≥ 3 in a given order with probability 1/C! ≤ 1/6 (the ROUNDING
    slack adds ties of probability below 1e-5 a pair); the share of n·inst ≥ 12000 such rows exceeds 1/2 with
    probability ≤ exp(-2·12000·(1/2 - 1/6)²) < e^-2600 (Hoeffding). Then (code position_dependent) when the mean of r
    per C index, pooled over the n·inst ≥ 12000 draws of each index, climbs or falls monotonically by more than
    0.1 from the first index to the last: each mean is within sqrt(log(2·C/1e-9)/(2·12000)) < 0.034 of 1/2 for
    every index with probability 1 - 1e-9 (Hoeffding, range 1), so a correct draw's spread stays below 0.068."""
    C = r.shape[-1]
    if C < 3:
        return
    steps = r.double().diff(dim=-1)
    up, down = float((steps >= -ROUNDING).all(-1).double().mean()), float((steps <= ROUNDING).all(-1).double().mean())
    if max(up, down) > 0.5:
        order = "ascending" if up >= down else "descending"
        fail(
            f"{WHAT.format(layer)} is in {order} order along C in {max(up, down):.0%} of its rows (independent draws "
            f"are in that order in 1/C! = 1/{math.factorial(C)} of them): the draws depend on their position along C, "
            "sorted / ordered over C",
            "draw every entry independently: r = torch.rand_like(g), each entry uniform on [0, 1] whatever its "
            "position; no .sort() (or cumulative sum, or anything that orders the draws along C)",
            code="sorted_over_c",
        )
    means = r.double().flatten(0, -2).mean(0)  # [C]
    d = means.diff()
    if ((d > 0).all() or (d < 0).all()) and abs(float(means[-1] - means[0])) > 0.1:
        shown = ", ".join(f"{float(m):.3f}" for m in means)
        fail(
            f"the mean of {WHAT.format(layer)} per C index changes monotonically along C ({shown}; independent "
            "uniform draws give 0.5 at every index, within 0.034): the draws depend on their position along C",
            "draw every entry independently and identically: r = torch.rand_like(g), no sort, cumulative operation "
            "or position-dependent scaling along C",
            code="position_dependent",
        )


def clamped(r: Tensor, layer: int) -> None:
    """Fails (code r_clamped) when every cell's draws stop short of 0 (or 1) by more than 0.01 and pile up at their
    bound. A uniform cell's smallest of n = 4000 draws exceeds 0.01 with probability 0.99^4000 < e^-40; the number
    of a uniform cell's draws within 1e-4 of any point is Binomial(n, ≤ 2e-4) (mean ≤ 0.8), at least 1% of n (40)
    with probability ≤ (e·0.8/40)^40 < 1e-50 (Chernoff), so a correct draw never fails either test."""
    n = r.shape[0]
    for end, bound in (("below", r.min(0).values), ("above", r.max(0).values)):  # [inst C]
        gap = bound if end == "below" else 1 - bound
        if not bool((gap > 0.01).all()):
            continue
        share = float(((r - bound).abs() < 1e-4).double().mean())  # pooled over the cells
        if share < 0.01:
            continue
        at = float(bound.median())
        usual = at if end == "below" else 1 - at
        fail(
            f"{WHAT.format(layer)} has no draw {end} {at:.3g} and {share:.0%} of its {n} draws per cell piled up "
            f"at {at:.3g}: r clamped, draws piled up at {at:.3g} (a uniform r has about {usual:.0%} of its "
            f"draws {end} {at:.3g} and no point mass)",
            f"r is uniform on [0, 1] itself: torch.rand_like(g), no clamp({'min' if end == 'below' else 'max'}="
            f"{at:.3g}) (a draw of exactly 0 or 1 is harmless: the mask is then g or 1)",
            code="r_clamped",
        )
