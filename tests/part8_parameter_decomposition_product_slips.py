"""stochastic_reconstruction_losses: masked_product's own mistakes, carried into the losses.

The losses run the chain with masked_product in place of the masked matrices, so a slip in how each masked product is
formed (the delta term dropped or unmasked, the mask applied twice or inverted, ...) changes both losses. The checker
recomputes both losses with each of masked_product's catalogued slips and names the one that reproduces the learner's
pair. The learner's masked_product may be right while the call is not: passing U[l] @ V[l] as W makes the delta
W - U V vanish, exactly as a product without the delta term.
"""

from __future__ import annotations

import torch
from torch import Tensor

from tests import part8_parameter_decomposition_mistakes as mis
from utils.part8_parameter_decomposition import WeightChain

NO_DELTA = (
    "each masked product lacks its delta term m_Δ · (W - U V) a: the delta (what the subcomponents miss) is zero in "
    "your runs. Was U[l] @ V[l] passed to masked_product as W (then W - U V = 0), or the delta term dropped? Pass the "
    "original matrix chain.weights[l] as W"
)


def recon_product_slips(
    chain: WeightChain, p: dict[str, list[Tensor]], x: Tensor, found: list[tuple[str, str, Tensor]]
) -> list[tuple[str, str, Tensor]]:
    """(full, layerwise) with every masked product formed with one of masked_product's slips; those equal to a
    reconstruction mistake already listed (`found`, or the main catalogue's) keep that entry's code alone."""
    with torch.no_grad():
        known = [m for *_, m in found + mis.recon_candidates(chain, p, x)[1]]
        target, L = chain(x), len(chain.weights)

        def losses(variant: str) -> Tensor:
            def loss(layers: set[int]) -> Tensor:
                def layer_fn(layer: int, a: Tensor) -> Tensor:
                    if layer not in layers:
                        return mis.mm(a, chain.weights[layer])
                    q = {"a": a, "W": chain.weights[layer], "U": p["U"][layer], "V": p["V"][layer]}
                    q |= {"mask": p["masks"][layer], "delta_mask": p["delta_masks"][layer]}
                    return mis.product_reference(q, variant)

                return (chain(x, layer_fn) - target).pow(2).mean((0, 2)).sum()

            return torch.stack([loss(set(range(L))), sum(loss({n}) for n in range(L)) / L])

        slips = [
            (
                f"product_{code}",
                NO_DELTA if code == "no_delta" else f"each masked product has masked_product's slip: {hint}",
                losses(code),
            )
            for code, hint in mis.PRODUCT_MISTAKES
        ]
        same = lambda a, b: bool(torch.allclose(a, b, rtol=1e-4, atol=1e-5))
        return [s for s in slips if not any(same(s[2], m) for m in known)]
