"""resample_simple: the new directions must not depend on the dead latents' old ones.

A uniform direction v on the sphere in d_in dimensions has, with any fixed unit vector u, a cosine v·u of mean 0
and variance 1/d_in; over n resampled latents the mean cosine with their own old decoder rows (or old encoder
columns) is 0 ± 6·sqrt(1/(d_in·n)) except with probability ~1e-9. A larger mean says the old direction went into
the draw (old + noise, normalised), and cosines of 1 say the new direction is the old one, normalised (no draw).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from tests.checking import fail


def old_direction_failure(rows: Tensor, before: dict, dead: Tensor) -> None:
    """`rows` [n d_in]: the new unit decoder rows of the dead latents; `before`: the SAE's W_dec / W_enc before."""
    n, d_in = rows.shape
    if n < 100:
        return
    bound = 6 * math.sqrt(1 / (d_in * n))
    for name, old in (
        ("decoder rows", before["W_dec"][dead]),
        ("encoder columns", before["W_enc"].transpose(-1, -2)[dead]),
    ):
        cos = torch.nn.functional.cosine_similarity(rows.double(), old.double(), dim=-1)
        if float((cos.abs() > 1 - 1e-4).double().mean()) > 0.99:
            fail(
                f"the new directions are the dead latents' old {name}, normalised (cosine ±1 with them): they were "
                "not drawn at random",
                "draw a fresh random direction for each dead latent: v = torch.randn(n_dead, d_in), then "
                "v / v.norm(dim=-1, keepdim=True); the old weights of a dead latent play no part",
                code="old_direction_reused",
            )
        if abs(float(cos.mean())) > bound:
            fail(
                f"the new directions lean towards the dead latents' old {name}: their mean cosine with them is "
                f"{float(cos.mean()):.3f}, where independent uniform directions give 0 ± {bound:.3f}",
                "draw each new direction independently of the old weights (v = torch.randn(n_dead, d_in), normalised): "
                "adding noise to the old direction, or mixing it into the draw, keeps the dead latent where it died",
                code="draw_mixed_with_old",
            )
