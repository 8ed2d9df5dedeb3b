"""Part 8 svd_terms: singular values normalised to sum to 1, and a scale slip together with the order reversed.

* `sigma_normalised`: σ_k / Σ_j σ_j (the share of each singular value, an explained-variance habit) in place of σ_k.
* `two_slips`: ascending order (largest last) together with a scale slip (no σ, σ², √σ, σ / Σσ). The catalogue
  names each slip alone; these are the pairs, on the checker's matrices (separated by `audit_catalogues`).
"""

from __future__ import annotations

import torch
from torch import Tensor

Mistakes = list[tuple[str, str, Tensor]]


def sigma_scales(W: Tensor) -> Mistakes:
    """σ / Σσ alone, then each scale slip with the order reversed."""
    U, S, Vh = torch.linalg.svd(W, full_matrices=False)
    terms = lambda S_: torch.einsum("iak,ik,ikb->ikab", U, S_, Vh)
    share = S / S.sum(-1, keepdim=True)
    out: Mistakes = [
        (
            "sigma_normalised",
            "your terms carry σ_k / Σ_j σ_j (each singular value's share) in place of σ_k: multiply by the singular "
            "value itself, so that the terms add up to W",
            terms(share),
        )
    ]
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
