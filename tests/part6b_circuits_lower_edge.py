"""quantile_examples: a band closed at its lower edge (a >= lo: zeros join the lowest band, a value on an edge joins
the band above) and the k closest chosen among all activations (outside the band too) coincide on the main input,
where the nearest out-of-band value sits on the lower edge. A second input tells them apart: in its band (2, 3]
(k = 3, one example 2.5) the value 2.0 sits on the lower edge and 3.02 just above the band, farther than 2.0."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from tests import part6b_circuits_mistakes as known
from tests import part6b_circuits_readbacks as readbacks
from tests.checking import fail

CLOSED_BOTTOM = (
    "a value on a band's lower edge belongs to the band below: (a > lo) & (a <= hi), strict at the bottom; with "
    "a >= lo an activation of 0 (not firing) joins the lowest band"
)


def _probe(device: torch.device) -> Tensor:
    """[3, 6] activations (position 0, BOS, at 0), max 4: bands (3, 4], (2, 3], (1, 2], (0, 1] for n_bands = 4."""
    acts = torch.zeros(3, 6)
    acts[0, 1:] = torch.tensor([4.0, 3.45, 0.0, 2.5, 0.3])
    acts[1, 1:] = torch.tensor([3.02, 2.0, 0.0, 1.4, 0.0])
    acts[2, 1:] = torch.tensor([1.6, 0.0, 1.9, 0.9, 0.0])
    return acts.to(device)


def _readings(acts: Tensor, k: int, n_bands: int) -> dict[str, list[list[Tensor]]]:
    closed = [[g[0].double().cpu() for g in r] for r in known.closed_bottom_values(acts, k, n_bands)]
    outside = [g[0].double().cpu() for g in known.quantile_variant(acts, k, n_bands, outside_band=True)]
    return {"closed": closed, "outside": [outside]}


def edge_or_outside(impl: Callable, acts: Tensor, k: int, n_bands: int) -> tuple[str, str]:
    """Called when the main output fits both readings: fail with the one the second input shows; else return
    ("boundary", both readings) for the caller's message."""
    probe = _probe(acts.device)
    try:
        got = readbacks._values(impl(probe.clone(), k, n_bands))
    except Exception:  # a crash on the probe: the main input's reading stands
        got = None
    readings = _readings(probe, k, n_bands)
    fits = {name: got is not None and any(readbacks._same(got, r) for r in rs) for name, rs in readings.items()}
    if fits["closed"] and not fits["outside"]:
        fail(
            "observed: your groups are those of bands closed at the bottom, [lo, hi]: on a second input (max 4, "
            "k = 3) band (2, 3] also holds 2.0, the value on its lower edge, and not 3.02, the nearest value above it",
            CLOSED_BOTTOM,
            code="closed_bottom",
        )
    if fits["outside"] and not fits["closed"]:
        fail(
            "observed: your groups take the k closest to each band's middle among ALL activations: on a second "
            "input (max 4, k = 3) band (2, 3] holds 3.02 and 2.0, both outside it",
            known.QUANTILE_MISTAKES["outside_band"],
            code="outside_band",
        )
    return "boundary", known.EDGE_OR_OUTSIDE


def closed_on_main(out: object, acts: Tensor, k: int, n_bands: int) -> bool:
    return any(known.same_values(out, c) for c in known.closed_bottom_values(acts, k, n_bands))


def edge_reading(impl: Callable, out: object, acts: Tensor, k: int, n_bands: int, code: str) -> tuple[str, str]:
    """The code and hint for output whose values are those of the catalogue's mistake `code`: outside_band that also
    fits a band closed at the bottom is settled on the second input (or both readings are listed)."""
    if code == "outside_band" and closed_on_main(out, acts, k, n_bands):
        return edge_or_outside(impl, acts, k, n_bands)
    return code, known.QUANTILE_MISTAKES[code]
