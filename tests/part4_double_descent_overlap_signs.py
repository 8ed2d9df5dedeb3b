"""compute_dimensionality mistakes that let the overlaps' sign decide what counts (`tests.part4_double_descent`):
the overlaps v̂ᵢ·vⱼ rectified before squaring (clamp_min(0), relu: an antipodal vector adds no interference) or
only their negative part kept (clamp_max(0)). Squaring makes the sign irrelevant, so both change the answer
wherever some overlap is negative."""

from __future__ import annotations

import torch
from torch import Tensor

Mistake = tuple[str, str, Tensor]


def signed_overlap_candidates(v: Tensor) -> list[Mistake]:
    """What D_i = ‖vᵢ‖² / Σⱼ (v̂ᵢ·vⱼ)² gives on v [inst n d] when the overlaps keep one sign only."""
    v = v.double()
    norm_sq = (v**2).sum(-1)
    dots = torch.einsum("kid,kjd->kij", v / norm_sq.sqrt().clamp_min(1e-300)[..., None], v)
    out = []
    for kept, how in (
        (dots.clamp_min(0), "positive (clamp_min(0), F.relu or torch.where(dots > 0, dots, 0))"),
        (dots.clamp_max(0), "negative (clamp_max(0))"),
    ):
        den = kept.pow(2).sum(-1)
        out.append(
            (
                "overlap_sign",
                f"your values are ‖vᵢ‖² / Σⱼ (v̂ᵢ·vⱼ)² with only the {how} overlaps counted: an overlap's sign "
                "doesn't matter, a vector pointing the opposite way interferes as much as one pointing the same "
                "way; square every overlap as it is, (v̂ᵢ·vⱼ)², with no clamp or ReLU before the square",
                torch.where(den > 0, norm_sq / den.clamp_min(1e-300), 0.0),
            )
        )
    return out
