"""compute_dimensionality: slips in how the columns W_i are prepared or reduced. The self term plus only the largest
other overlap in the denominator (a max where the sum belongs). W centred before D (its mean over the features or over
d_hidden subtracted). ‖W_i‖² taken as a mean over d_hidden instead of a sum (D / d_hidden when it is used once, in
the numerator or in the normalisation, D / d_hidden² when used in both). A norm kept with keepdim=True ([inst, 1,
feats]) divided by an [inst, feats] denominator, which broadcasts to [inst, inst, feats]."""

from __future__ import annotations

import torch
from torch import Tensor


def _dimensionality(W: Tensor) -> Tensor:
    norms_sq = W.pow(2).sum(1)
    den = torch.einsum("kdi,kdj->kij", W, W).pow(2).sum(-1)
    return torch.where(den > 0, norms_sq**2 / den, torch.zeros_like(den))


def column_slip_readings(W: Tensor) -> list[tuple[str, str, Tensor]]:
    """(code, hint, value) of the slips above that keep the shape [inst, feats], on W [inst d_hidden feats]."""
    W = W.double()
    d = W.shape[1]
    right = _dimensionality(W)
    norms_sq = W.pow(2).sum(1)
    others = torch.einsum("kdi,kdj->kij", W, W).pow(2)
    others = others.masked_fill(torch.eye(W.shape[2], dtype=torch.bool), 0.0).amax(-1)
    return [
        (
            "max_not_sum",
            "your denominator is the self term plus only the *largest* other overlap, ‖W_i‖⁴ + max_j≠i (W_i·W_j)² "
            "(or, normalised, ‖W_i‖² + max_j≠i (Ŵ_i·W_j)²): sum the squared overlaps over *every* j, the j = i term "
            "included, Σ_j (Ŵ_i·W_j)²",
            torch.where(norms_sq > 0, norms_sq**2 / (norms_sq**2 + others).clamp_min(1e-300), 0.0),
        ),
        (
            "centred_columns",
            "your values are D_i of W with its mean over the features subtracted first (W - W.mean(2, keepdim=True)): "
            "D_i uses the columns W_i as they are, with no centring",
            _dimensionality(W - W.mean(2, keepdim=True)),
        ),
        (
            "centred_columns",
            "your values are D_i of W with each column's mean over d_hidden subtracted first (W - W.mean(1, "
            "keepdim=True)): D_i uses the columns W_i as they are, with no centring",
            _dimensionality(W - W.mean(1, keepdim=True)),
        ),
        (
            "mean_over_hidden",
            f"your values are D_i / d_hidden² (= D_i / {d * d}): ‖W_i‖² computed as a mean over d_hidden "
            "(W.pow(2).mean(1)) where the sum belongs, both in the numerator and in the norm used to normalise: "
            "‖W_i‖² = W.pow(2).sum(1)",
            right / d**2,
        ),
    ]


def keepdim_shapes(W: Tensor) -> list[tuple[str, str, Tensor]]:
    """(code, hint, value) of a keepdim norm [inst, 1, feats] divided by an [inst, feats] denominator."""
    W = W.double()
    norms_sq = W.pow(2).sum(1)
    dots = torch.einsum("kdi,kdj->kij", W, W)
    den_raw = dots.pow(2).sum(-1)
    den_hat = (dots / norms_sq.sqrt()[..., :, None]).pow(2).sum(-1)
    hint = (
        "a norm kept its reduced axis (keepdim=True gives [inst, 1, feats]) and was divided by an [inst, feats] "
        "denominator, which broadcasts to [inst, inst, feats]: drop keepdim for the numerator (W.pow(2).sum(1)), or "
        "keep it only where it is needed to normalise W"
    )
    return [
        ("keepdim_broadcast", hint, norms_sq[:, None, :] ** 2 / den_raw[None]),
        ("keepdim_broadcast", hint, norms_sq[:, None, :] / den_hat[None]),
    ]
