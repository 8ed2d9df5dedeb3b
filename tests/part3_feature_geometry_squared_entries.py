"""D_i read back with the square inside the dot product: Σ_d Ŵ_di²·W_dj² (the entries squared before they are
multiplied and summed) where (Σ_d Ŵ_di·W_dj)² belongs. Named only when the learner's values equal that form wherever
its denominator is positive."""

from __future__ import annotations

import torch
from torch import Tensor

from tests.checking import fail


def squares_inside_dot_failure(out: Tensor, W: Tensor, what: str) -> None:
    """Fail (`squared_inside_dot`) when out = ‖W_i‖² / Σ_j Σ_d Ŵ_di² W_dj² (or ‖W_i‖⁴ / Σ_j Σ_d W_di² W_dj²)."""
    if not isinstance(out, Tensor) or tuple(out.shape) != (W.shape[0], W.shape[2]) or not out.is_floating_point():
        return
    got, W = out.detach().double().cpu(), W.detach().double().cpu()
    norms_sq = W.pow(2).sum(1)
    W_hat = W / norms_sq.sqrt().clamp_min(1e-12)[:, None, :]
    den = (W_hat.pow(2).mT @ W.pow(2)).sum(-1)
    pos = den > 1e-9
    if int(pos.sum()) < 3:
        return
    value = norms_sq / torch.where(pos, den, torch.ones_like(den))
    if not bool(torch.isclose(got[pos], value[pos], rtol=1e-4, atol=1e-6).all()):
        return
    fail(
        f"{what} equals ‖W_i‖² / Σ_j Σ_d Ŵ_di²·W_dj² wherever that denominator is positive: the entries are squared "
        "before the dot product, where the dot product itself is squared, (Σ_d Ŵ_di·W_dj)²",
        "square the overlap, not the coordinates: ((Ŵ.mT @ W) ** 2).sum(-1), i.e. einsum(Ŵ, W, 'inst d i, inst d j -> "
        "inst i j') ** 2, not einsum(Ŵ ** 2, W ** 2, ...)",
        code="squared_inside_dot",
    )
