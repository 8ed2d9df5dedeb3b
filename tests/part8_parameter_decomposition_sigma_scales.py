"""Part 8 svd_terms: a scale slip together with the order reversed, named as both (`two_slips`).

The catalogue names each slip alone (ascending order; no σ, σ², √σ; σ / Σσ is read back by
`behaviour.term_size_hint`, whose reading needs the terms in the right order). These are the pairs, ascending order
with each scale slip, on the checker's matrices (separated by `audit_catalogues`).
"""

from __future__ import annotations

import torch
from torch import Tensor

Mistakes = list[tuple[str, str, Tensor]]


def sigma_scales(W: Tensor) -> Mistakes:
    """Each scale slip with the order reversed."""
    U, S, Vh = torch.linalg.svd(W, full_matrices=False)
    terms = lambda S_: torch.einsum("iak,ik,ikb->ikab", U, S_, Vh)
    share = S / S.sum(-1, keepdim=True)
    out: Mistakes = []
    scales = {
        "no σ (u_k v_kᵀ alone)": torch.ones_like(S),
        "σ_k² in place of σ_k": S**2,
        "√σ_k in place of σ_k": S.sqrt(),
        "σ_k / Σ_j σ_j in place of σ_k": share,
    }
    for name, scale in scales.items():
        hint = f"two slips: the smallest singular value first (keep torch's order, largest first), and {name}"
        out.append(("two_slips", hint, terms(scale).flip(1)))
    return out
