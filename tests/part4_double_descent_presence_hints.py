"""generate_dataset readings that name what the observation shows: a presence rate of 1 - p (an inverted comparison,
or dropout's p read as the keep probability: the rate cannot tell the two apart, and dropout's 1 / (1 - p) scaling
cancels on normalising), and short examples among ones exactly unit (a floor on the norm divided by, not an eps
added to every norm). A presence rate that is none of the catalogue's is compared with a few more rules (√p, two
masks OR-ed); otherwise the rate itself, as a multiple of p, is what the hint reports."""

from __future__ import annotations

import math
from collections.abc import Callable

from torch import Tensor

PRESENCE_INVERTED = (
    "features are present with probability 1 - p: the mask keeps what it should drop. Possible causes: an inverted "
    "comparison (`rand > p`), or F.dropout(x, p) / nn.Dropout(p), whose p is the probability of *dropping* an entry "
    "(its 1 / (1 - p) rescaling cancels on normalising, so the rate is all that shows); keep an entry when "
    "`torch.rand(...) < p`"
)


def unscaled_small_rows(rows: Tensor, unit: Tensor) -> tuple[str, str] | None:
    """(code, hint) when most non-empty examples' norms `rows` are 1 to float32 rounding (median |norm - 1| <= 3e-7
    over those above 0.5) and some are clearly shorter: those short examples were divided by more than their norm,
    as x / norm.clamp_min(c) does for norm < c. An eps added to the norm would shorten *every* example (by eps / ‖x‖,
    which is above 3e-7 for any eps large enough to shorten a row by 10%, on rows of norm below 1 / (9 · 3e-7))."""
    rows = rows.double()
    big, short = rows[rows >= 0.5], rows[~unit]
    if big.numel() < 100 or short.numel() == 0 or float((big - 1).abs().median()) > 3e-7:
        return None
    return "norm_floor", (
        f"{int(unit.sum())} examples have norm 1 to float32 rounding, but {short.numel()} are shorter (norms "
        f"{float(short.min()):.3g} to {float(short.max()):.3g}): those examples were divided by more than their own "
        "norm, as when the norm divided by has a floor (x / norm.clamp_min(c), max(norm, c)) above their norms; an eps "
        "added to the norm would shorten every example. Use a floor far below any real norm, norm.clamp_min(1e-12), "
        "or F.normalize"
    )


def rate_readback(pooled: float, p: float, tolerance: Callable[[float], float]) -> tuple[str, str]:
    """(code, hint) for a pooled presence rate that matches no catalogue rule; `tolerance(rate)` is the noise bound."""
    rules = [
        (math.sqrt(p), "√p: the mask compares with a root of the probability (rand < p ** 0.5, math.sqrt(p))?"),
        (
            1 - (1 - p) ** 2,
            "1 - (1 - p)² = 2p - p²: two independent masks OR-ed (mask1 | mask2, or a feature kept when either of two "
            "draws is below p)?",
        ),
    ]
    for rate, why in rules:
        if abs(pooled - rate) <= tolerance(rate):
            return "presence_rule", (
                f"features are present at {pooled:.2%} on average, which is {why} Each entry needs one draw, present "
                "when torch.rand(...) < feature_probability"
            )
    return "presence_probability", (
        f"features are present at {pooled:.2%} on average, {pooled / p:.3g} × p: each feature should be present with "
        "probability feature_probability, independently (one draw per entry, torch.rand(...) < feature_probability)"
    )
