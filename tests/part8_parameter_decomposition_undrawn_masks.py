"""Part 8 sample_masks: masks that were never drawn (m = g) and masks drawn on a geometric scale (m = g ** r), named.

Both are read before the coin-flip and range readings, which would otherwise guess another cause:

* `mask_is_g`: every entry with g < 1 equals its g exactly, so r = (m - g) / (1 - g) is 0 on every draw: the
  matrix got no random draw at all (a loop or comprehension that skipped it). A uniform r is exactly 0 about once
  in 2^24 draws, so a correct answer never reaches it.
* `geometric`: m = g ** r interpolates between g and 1 on a log scale: log(m) / log(g) is uniform where r is not.
  On the cells with 0.02 < g < 0.98, the draws of r and of q = log(m) / log(g) are each compared with U[0, 1] by a
  Kolmogorov-Smirnov distance; the bound is DKW's sqrt(ln(2/δ) / (2n)), δ = 1e-6. The mistake is named only when
  q fits within the bound and r misses it by more than four bounds: a correct r fits with probability 1 - 1e-6,
  so a correct answer never reaches it.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from tests.checking import fail


def _ks_uniform(xs: Tensor) -> float:
    """Kolmogorov-Smirnov distance of the draws xs from U[0, 1]."""
    xs = xs.double().clamp(0, 1).sort().values
    n = xs.numel()
    i = torch.arange(1, n + 1, dtype=torch.float64, device=xs.device)
    return float(torch.maximum((i / n - xs).abs(), ((i - 1) / n - xs).abs()).max())


def undrawn(m: Tensor, g: Tensor, layer: int) -> None:
    """Fails when mask `layer` is its causal importance g everywhere (mask_is_g) or g ** r (geometric)."""
    m, g = m.detach().double(), g.detach().double()
    open_ = g < 1 - 1e-6
    if not bool(open_.any()) or not bool(torch.isfinite(m).all()):
        return
    if bool(((m - g).abs() < 1e-9)[open_].all()):
        fail(
            f"mask {layer} equals its causal importance g on every entry: no random draw reached it (r = 0 always)",
            "every matrix's mask gets its own draw, m = g + (1 - g) r with r = torch.rand_like(g), for every g in "
            "causal_importances: did a loop or comprehension skip this matrix, or return g itself?",
            code="mask_is_g",
        )
    inside = (g > 0.02) & (g < 0.98) & (m > 0) & (m <= 1 + 1e-9)
    if int(inside.sum()) < 4000 or not bool(((m >= g - 1e-9) | ~inside).all()):
        return
    r = ((m - g) / (1 - g))[inside]
    q = (m[inside].log() / g[inside].log()).clamp(0, 1)
    bound = math.sqrt(math.log(2 / 1e-6) / (2 * r.numel()))
    if _ks_uniform(q) <= bound and _ks_uniform(r) > 4 * bound:
        fail(
            f"mask {layer} is g ** r: log(mask) / log(g) is uniform on [0, 1] (Kolmogorov-Smirnov distance within "
            f"{bound:.3f}), while r = (mask - g) / (1 - g) is not",
            "your masks interpolate between g and 1 on a log scale (g ** r, or torch.exp(r * g.log())); the mask "
            "interpolates linearly: m = g + (1 - g) r with r = torch.rand_like(g)",
            code="geometric",
        )
