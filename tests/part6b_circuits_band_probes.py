"""quantile_examples probes where the main input lets two rules coincide: floor division `//` in the band edges vs
the max truncated to an integer (int(m)) told apart on a second input whose max is 6.75 (floor division gives edges
0, 1, 3, 5, 6; int(m) = 6 gives 0, 1.5, 3, 4.5, 6), and an input whose bands' k closest examples share a sequence
(the main input spreads them over sequences, so a rule keeping one example per sequence went unseen)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from tests import part6b_circuits_hints as hints
from tests import part6b_circuits_mistakes as known
from tests import part6b_circuits_readbacks as readbacks
from tests.checking import fail
from tests.part6b_circuits_lower_edge import closed_on_main, edge_or_outside
from tests.part6b_circuits_lower_edge import edge_reading as edge_reading  # re-exported for the checker


def _flat(acts: Tensor) -> Tensor:
    flat = acts.detach().double().cpu().clone()
    flat[:, 0] = 0
    return flat.flatten()


def named_mistake(impl: Callable, acts: Tensor, k: int, n_bands: int, code: str) -> None:
    """Fail with the catalogue's mistake `code`; for floor_division (which int(m) reproduces on the main input)
    only after a second input with a max of 6.75 tells the two apart."""
    if code == "outside_band" and closed_on_main(impl(acts.clone(), k, n_bands), acts, k, n_bands):
        code, hint = edge_or_outside(impl, acts, k, n_bands)
        fail(f"the groups differ from the expected ones ({code})", hint, code=code)
    if code != "floor_division":
        fail(f"the groups differ from the expected ones ({code})", known.QUANTILE_MISTAKES[code], code=code)
    probe = acts * (6.75 / float(_flat(acts).max()))
    try:
        got = readbacks._values(impl(probe.clone(), k, n_bands))
    except Exception:
        got = None
    flat = _flat(probe)
    top = float(flat.max())
    m0 = float(_flat(acts).max())
    edges = ", ".join(f"{math.floor(m0 * i / n_bands):g}" for i in range(n_bands + 1))
    seen = f"observed: your groups are those of the whole-number band edges {edges} (the max is {m0:g})"
    floored = [g[0] for g in known.quantile_variant(probe, k, n_bands, floor_division=True)]
    if got is not None and readbacks._same(got, floored):
        fail(f"the groups differ from the expected ones ({code})", known.QUANTILE_MISTAKES[code], code=code)
    for name, m in (
        ("truncated to an integer (int(m), math.floor, .long())", math.floor(top)),
        ("rounded", round(top)),
    ):
        if got is not None and readbacks._same(got, readbacks._bands(flat, k, n_bands, float(m))):
            fail(
                f"{seen}; on a second input whose max is {top:g}, your groups are those of bands built on m = {m} "
                f"(the max {name}): re-running the bands with that m gives your values",
                f"m is the max itself, a float: keep it as a tensor or float (int(m) drops its fraction, so the "
                f"bands split (0, {m}] instead of (0, {top:g}])",
                code="integer_max",
            )
    fail(
        f"{seen}; on a second input whose max is {top:g}, your groups match neither floor division nor an integer m",
        "possible causes, e.g. floor division `//` in the edges m·(n-j-1)/n, m·(n-j)/n, or the max m turned into "
        "an integer (int(m)); the edges are m·i/n_bands with true division and the float max",
        code="whole_edges",
    )


def _shared_sequence_acts(device: torch.device) -> Tensor:
    """[5, 7] activations, bands of max 6.0 for n_bands = 3: the two closest to the middles 5 and 3 share a
    sequence (2 and 1), the third-closest sits in another one; the bottom band's two closest lie in two sequences."""
    acts = torch.zeros(5, 7, dtype=torch.float64)
    acts[0, 3], acts[2, 1], acts[2, 4], acts[3, 2] = 6.0, 5.05, 4.9, 4.5
    acts[1, 5], acts[1, 2], acts[4, 6] = 3.05, 2.9, 2.4
    acts[0, 5], acts[4, 1], acts[3, 6] = 1.1, 0.95, 0.4
    return acts.float().to(device)


def _one_per_sequence(flat: Tensor, k: int, n_bands: int, seq_len: int) -> list[Tensor]:
    top, groups = float(flat.max()), []
    for j in range(n_bands):
        lo, hi = top * (n_bands - j - 1) / n_bands, top * (n_bands - j) / n_bands
        d = torch.where((flat > lo) & (flat <= hi), (flat - (lo + hi) / 2).abs(), torch.full_like(flat, math.inf))
        chosen, used = [], set()
        for i in d.argsort().tolist():
            if d[i] == math.inf or len(chosen) == k:
                break
            if i // seq_len not in used:
                used.add(i // seq_len)
                chosen.append(i)
        groups.append(flat[chosen].sort(descending=True).values)
    return groups


def shared_sequence(impl: Callable, device: torch.device) -> None:
    """A call where two of a band's k closest examples come from the same sequence."""
    acts, k, n_bands = _shared_sequence_acts(device), 2, 3
    expected = known.quantile_variant(acts, k, n_bands)
    out = impl(acts.clone(), k, n_bands)
    if known.same_groups(out, expected):
        return
    got = readbacks._values(out)
    if got is not None and readbacks._same(got, _one_per_sequence(_flat(acts), k, n_bands, acts.shape[1])):
        fail(
            f"on a [5, 7] input (k={k}, n_bands={n_bands}) whose bands' two closest examples share a sequence, each "
            "of your bands holds at most one example per sequence: re-running the bands with a sequence skipped "
            "once it has an example gives your values",
            "every (sequence, position) is a candidate, several from one sequence included: take the k closest to "
            "the middle over the flattened activations, without skipping a sequence already chosen",
            code="one_per_sequence",
        )
    hints.one_per_sequence(out, expected, acts, k, n_bands)
    want = [[round(float(v), 3) for v in e[0]] for e in expected]
    fail(
        f"on a [5, 7] input (k={k}, n_bands={n_bands}, max 6) whose bands' two closest examples share a sequence, "
        f"your groups differ from the expected ones (values {want}) though the first input was right",
        "observed only on this input; possible causes, e.g. examples filtered by sequence, or a rule tied to the "
        "first input's sizes: the k closest to each band's middle over all (sequence, position) pairs",
        code="shared_sequence",
    )
