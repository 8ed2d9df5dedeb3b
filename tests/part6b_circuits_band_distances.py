"""quantile_examples ranked by another closeness than |a - middle|: the distance relative to the activation
(|a - middle| / a) or on a log scale (|log a - log middle|), or the distance to the median of the band's own values
instead of the band's middle (lo + hi) / 2. Each rule gives its own groups; when the learner's values are exactly
those of one (and not the right ones), the rule is named."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor

from tests import part6b_circuits_band_groups as groups
from tests.outcomes import fail

RULE = "rank the band's activations by the plain distance |a - middle|, smallest first, with middle = (lo + hi) / 2"

# (code, what the learner's ranking was, score(values, lo, hi): smaller is closer)
CLOSENESS: tuple[tuple[str, str, Callable[[Tensor, float, float], Tensor]], ...] = (
    (
        "relative_distance",
        "the distance relative to the activation, |a - middle| / a",
        lambda v, lo, hi: (v - (lo + hi) / 2).abs() / v,
    ),
    (
        "log_distance",
        "the distance on a log scale, |log a - log middle|",
        lambda v, lo, hi: (v / ((lo + hi) / 2)).log().abs(),
    ),
    (
        "band_median",
        "the distance to the median of the band's own values (torch.median / .median())",
        lambda v, lo, hi: (v - v.median()).abs() if len(v) else v,
    ),
    (
        "band_median",
        "the distance to the median of the band's own values (torch.quantile(values, 0.5))",
        lambda v, lo, hi: (v - v.quantile(0.5)).abs() if len(v) else v,
    ),
)


def _bands(flat: Tensor, top: float, k: int, n_bands: int, score: Callable) -> list[Tensor]:
    out = []
    for j in range(n_bands):
        lo, hi = top * (n_bands - j - 1) / n_bands, top * (n_bands - j) / n_bands
        vals = flat[(flat > lo) & (flat <= hi)]
        out.append(vals[score(vals, lo, hi).argsort(stable=True)[:k]].sort(descending=True).values)
    return out


def other_closeness(out: Any, acts: Tensor, k: int, n_bands: int) -> None:
    """Name the closeness rule whose groups the learner's values are exactly (every rule that fits, when several do)."""
    try:
        body = groups.without_position_zero(acts)
        flat, top = body.flatten(), float(body.max())
        right = _bands(flat, top, k, n_bands, lambda v, lo, hi: (v - (lo + hi) / 2).abs())
        if groups.same_bands(out, right):
            return
        fits = [(c, w) for c, w, s in CLOSENESS if groups.same_bands(out, _bands(flat, top, k, n_bands, s))]
    except (TypeError, RuntimeError, IndexError, ValueError):
        return
    if not fits:
        return
    whats = list(dict.fromkeys(w for _, w in fits))
    fail(
        "your groups are the in-band activations closest by " + " or by ".join(whats) + ", not by the distance to "
        "each band's middle (lo + hi) / 2",
        RULE,
        code=fits[0][0],
    )
