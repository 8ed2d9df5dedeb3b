"""quantile_examples: band readings checked before the catalogue's mistakes, so that a look-alike code is not
claimed: a band test missing one of its edges (open above: a > lo only; open below: a <= hi only), and every band
ranked by the distance to one point, the middle of the whole range m/2 (which ranks exactly like the middles counted
from the bottom, m·(j+½)/n: both lie outside every band but the middle one, so both causes are listed)."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from tests import part6b_circuits_band_groups as groups
from tests.checking import fail

EDGE_RULE = "band j is (lo, hi] = (m(n-j-1)/n, m(n-j)/n]: test both edges, (a > lo) & (a <= hi)"


def _open_edge(out: Any, flat: Tensor, k: int, n_bands: int, top: float) -> str | None:
    """The name of the band test with one edge missing that reproduces every band, else None."""
    readings = (
        ("a > lo only: the upper edge a <= hi missing, so each band also holds the values above it", True, False),
        ("a >= lo only: the upper edge a <= hi missing, so each band also holds the values above it", True, True),
        ("a <= hi only: the lower edge a > lo missing, so each band also holds the values below it", False, False),
    )
    for what, above, closed in readings:
        if above:
            member = lambda v, lo, hi, j, c=closed: ((v >= lo) if c else (v > lo)) & (v > 0)
        else:
            member = lambda v, lo, hi, j: (v <= hi) & (v > 0)
        if groups.same_bands(out, groups.member_bands(flat, k, n_bands, top, member)):
            return what
    return None


def band_readings(out: Any, acts: Tensor, k: int, n_bands: int) -> None:
    """Fail naming a band test missing one edge, or every band ranked from m/2, when it reproduces every band."""
    try:
        body = groups.without_position_zero(acts)
        flat, top = body.flatten(), float(body.max())
        edge = _open_edge(out, flat, k, n_bands, top)
        whole = groups.same_bands(out, groups.ranked_bands(flat, top, k, n_bands, lambda lo, hi: top / 2))
    except (TypeError, IndexError, RuntimeError, AttributeError, ValueError):
        return
    if edge is not None:
        fail(
            f"your groups are those of bands tested with one edge only ({edge}); these bands hold examples from "
            "outside them, at least one of the right ones is pushed out",
            f"a band test missing one of its edges: {EDGE_RULE}",
            code="band_edge_missing",
        )
    if whole:
        fail(
            "your groups are the in-band examples closest to m/2, the middle of the whole range, in every band (the "
            "smallest of each band above m/2, the largest of each band below it)",
            "possible causes: every band measured from the middle of the whole range, m/2: each band's own middle is "
            "lo + (hi - lo)/2 = (lo + hi)/2; or the middles counted from the bottom (m·(j+½)/n) while the bands count "
            "from the top (the two rank every band alike): band j (highest first) is (m(n-j-1)/n, m(n-j)/n], its "
            "middle m(n-j-½)/n",
            code="whole_range_middle",
        )
