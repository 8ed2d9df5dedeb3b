"""compute_dimensionality readings for part 4 (round AV), on v [inst n d]: the fast form with a centred Gram matrix
(torch.cov · n subtracts the mean vector), the self term (v̂_i·v_i)² = ‖v_i‖² written with another power of the norm,
and the sum over j that stops early or starts late (a loop or chunked range that drops vectors at one end)."""

from __future__ import annotations

import torch
from torch import Tensor


def _d(norm_sq: Tensor, den: Tensor) -> Tensor:
    return torch.where(norm_sq > 0, norm_sq / den, torch.zeros_like(norm_sq))


def gram_slip_candidates(v: Tensor, right: Tensor, catalogue: list) -> list:
    """New (code, hint, value [inst n]) entries that differ from `right`, the catalogue and each other."""
    v = v.double()
    n = v.shape[1]
    norm_sq = v.pow(2).sum(-1)
    unit = v / norm_sq.sqrt().clamp_min(1e-300)[..., None]
    terms = torch.einsum("kid,kjd->kij", unit, v).pow(2)  # (v̂_i·v_j)²
    centred = v - v.mean(1, keepdim=True)
    gram_c = torch.einsum("kjd,kje->kde", centred, centred)
    off = terms.sum(-1) - norm_sq
    forms = [
        (
            "centred_gram",
            "your denominator is v̂_iᵀ G v̂_i with G = Σ_j (v_j - v̄)(v_j - v̄)ᵀ, the *centred* Gram matrix (the mean "
            "vector v̄ subtracted: torch.cov(...) · n, or a centring before the product): Σ_j (v̂_i·v_j)² needs the "
            "uncentred G = Σ_j v_j v_jᵀ = vᵀ v (v[k].T @ v[k]); torch.cov always centres",
            _d(norm_sq, torch.einsum("kid,kde,kie->ki", unit, gram_c, unit)),
        ),
        *[
            (
                "self_term_power",
                f"your denominator is the sum over j ≠ i plus a self term {name}, where the j = i term is "
                "(v̂_i·v_i)² = ‖v_i‖² (the unit vector against the raw one): write it as norm_sq, or simply sum "
                "(v̂_i·v_j)² over every j including i",
                _d(norm_sq, off + self),
            )
            for name, self in (("‖v_i‖⁴ ((v_i·v_i)²)", norm_sq**2), ("‖v_i‖", norm_sq.sqrt()), ("1 ((v̂_i·v̂_i)²)", 1.0))
        ],
        *[
            (
                "sum_over_j_cut",
                f"your denominator sums (v̂_i·v_j)² over only the {which} {m} of the {n} vectors j: a loop or range "
                "that stops early or starts late (chunks of j with range(0, n - chunk + 1, chunk) drop the last "
                "partial chunk; an off-by-one in range(...)): the sum runs over every vector j of the instance",
                _d(norm_sq, terms[..., sl].sum(-1)),
            )
            for m in range(1, n)
            for which, sl in (("first", slice(0, m)), ("last", slice(n - m, n)))
        ],
    ]
    out = []
    for code, hint, value in forms:
        others = [right, *(c for _, _, c in catalogue), *(c for _, _, c in out)]
        if not any(c.shape == value.shape and torch.allclose(value, c, rtol=1e-4, atol=1e-6) for c in others):
            out.append((code, hint, value))
    return out
