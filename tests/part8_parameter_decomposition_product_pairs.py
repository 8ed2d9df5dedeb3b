"""Part 8 masked_product: one slip in the subcomponents' mask and one in the delta term at once, named as both.

Each single slip has its own catalogue entry (the mask inverted, squared, ignored or averaged over the batch; the
delta mask dropped, inverted, the delta dropped, W where W - U V belongs). A learner can make one of each: these
are the pairs, U (m' ⊙ V a) + d', evaluated on the checker's inputs (separated by `audit_catalogues`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

Mistakes = list[tuple[str, str, Tensor]]

MASKS: dict[str, Callable[[Tensor], Tensor]] = {
    "the mask inverted (1 - mask)": lambda m: 1 - m,
    "the mask applied twice (mask²)": lambda m: m * m,
    "the mask left out (every subcomponent whole)": torch.ones_like,
    "the mask averaged over the batch": lambda m: m.mean(0, keepdim=True).expand_as(m),
}


def _deltas(p: dict[str, Tensor]) -> dict[str, Tensor]:
    delta = torch.einsum("bid,iod->bio", p["a"], p["W"] - p["U"] @ p["V"])
    dm = p["delta_mask"][..., None]
    return {
        "the delta mask left out ((W - U V) a whole)": delta,
        "the delta mask inverted ((1 - delta_mask))": (1 - dm) * delta,
        "the delta term left out": torch.zeros_like(delta),
        "W a where the delta (W - U V) a belongs": dm * torch.einsum("bid,iod->bio", p["a"], p["W"]),
    }


def product_pairs(p: dict[str, Tensor]) -> Mistakes:
    """U (m' ⊙ V a) + d' for every (mask slip, delta slip) pair."""
    with torch.no_grad():
        inner = torch.einsum("bid,icd->bic", p["a"], p["V"])
        out: Mistakes = []
        for mask_name, mask in MASKS.items():
            up = torch.einsum("bic,ioc->bio", inner * mask(p["mask"]), p["U"])
            for delta_name, delta in _deltas(p).items():
                hint = (
                    f"two slips: {mask_name}, and {delta_name}. The masked product is "
                    "U (mask ⊙ V a) + delta_mask · (W - U V) a"
                )
                out.append(("two_slips", hint, up + delta))
    return out
