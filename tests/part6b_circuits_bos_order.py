"""quantile_examples with position 0 (BOS) removed AFTER the k closest examples were picked: a band whose middle
holds a position-0 entry then returns fewer than k examples although it has at least k real ones. The checker's
inputs put a position-0 entry at the middle of a band with more than k members, so this order shows."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from tests.checking import fail
from tests.part6b_circuits_mistakes import same_groups


def _removed_after(acts: Tensor, k: int, n_bands: int, top: float) -> list[tuple[Tensor, Tensor, Tensor]]:
    """Every position ranked (position 0 included), the k closest to each band's middle picked, position 0 dropped."""
    seq, flat = acts.shape[1], acts.flatten()
    groups = []
    for j in range(n_bands):
        lo, hi = top * (n_bands - j - 1) / n_bands, top * (n_bands - j) / n_bands
        in_band = (flat > lo) & (flat <= hi)
        n = min(k, int(in_band.sum()))
        distance = torch.where(in_band, (flat - (lo + hi) / 2).abs(), torch.full_like(flat, float("inf")))
        chosen = distance.topk(n, largest=False).indices
        chosen = chosen[chosen % seq != 0]
        chosen = chosen[flat[chosen].argsort(descending=True)]
        groups.append((flat[chosen], chosen // seq, chosen % seq))
    return groups


def removed_after_choosing(out: Any, acts: Tensor, k: int, n_bands: int) -> None:
    """Fail with a name when `out` is the groups with position 0 removed after picking the k closest (the bands
    from the max over positions >= 1, or over every position)."""
    for top in (float(acts[:, 1:].max()), float(acts.max())):
        if same_groups(out, _removed_after(acts, k, n_bands, top)):
            body, m = acts[:, 1:], float(acts[:, 1:].max())
            real = [
                int(((body > m * (n_bands - j - 1) / n_bands) & (body <= m * (n_bands - j) / n_bands)).sum())
                for j in range(n_bands)
            ]
            short = [j for j, g in enumerate(out) if len(g[0]) < min(k, real[j])]
            fail(
                f"band(s) {short} hold fewer examples than they have at positions >= 1 (k={k}): "
                "your groups are the k closest to each band's middle picked over every position, with position 0 "
                "removed afterwards",
                "position 0 removed after choosing: exclude it before picking the k closest (e.g. set acts[:, 0] "
                "to 0 on a copy, or mask it out of the band), so k real examples remain",
                code="bos_after_choosing",
            )
