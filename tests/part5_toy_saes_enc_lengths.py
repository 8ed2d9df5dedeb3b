"""Read back what the new encoder columns' lengths are, when resample_simple's encoder points along v but is not
resample_scale long.

The checker's resample_scale (0.37) and d_in (3) are generic, so a length that is one simple function of them
(√s, s², 1 − s, s·√d_in, s / d_in, ...) is that function and nothing else; lengths that vary per latent are read
against the old encoder column's norm (the length kept, scaled or not).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from tests.checking import fail


def _constant_rules(s: float, d: int) -> list[tuple[float, str, str]]:
    return [
        (math.sqrt(s), "√resample_scale: the square root of the scale", "enc_sqrt_scale"),
        (s * s, "resample_scale²: the scale applied twice (to v and again to the product)", "enc_scale_squared"),
        (1 - s, "1 − resample_scale", "enc_one_minus_scale"),
        (1 + s, "1 + resample_scale: the scale added to v's length instead of multiplying it", "enc_one_plus_scale"),
        (s * math.sqrt(d), f"resample_scale · √d_in (√{d}): v scaled up by √d_in", "enc_times_sqrt_d_in"),
        (s / math.sqrt(d), f"resample_scale / √d_in (√{d}): v divided by √d_in once more", "enc_over_sqrt_d_in"),
        (s * d, f"resample_scale · d_in ({d})", "enc_times_d_in"),
        (
            s / d,
            f"resample_scale / d_in ({d}): divided by d_in (a mean where a plain product was asked)",
            "enc_over_d_in",
        ),
        (s / 2, "resample_scale / 2", "enc_half_scale"),
        (1 / math.sqrt(s), "1 / √resample_scale", "enc_inverse_sqrt_scale"),
    ]


def encoder_length_reading(enc: Tensor, rows: Tensor, old: Tensor, scale: float, what: str) -> None:
    """`enc`, `rows`, `old`: [n d_in] new encoder columns, new decoder rows (unit), old encoder columns of the
    resampled latents. Fails with the rule's own code (enc_sqrt_scale, enc_old_length_scaled, ...) when the lengths
    are a recognisable rule; returns otherwise."""
    lengths = enc.norm(dim=-1)
    d = rows.shape[-1]
    near = lambda a, b: bool(torch.allclose(a, b, rtol=1e-3, atol=1e-7))
    for value, why, code in _constant_rules(scale, d):
        if near(lengths, torch.full_like(lengths, value)):
            fail(
                f"{what}: they point along v, but every one has length {float(lengths.mean()):.4g} = {why}, where "
                f"resample_scale = {scale} belongs",
                "encoder column = resample_scale · v, with v the unit decoder row: multiply v by resample_scale once, "
                "with nothing else",
                code=code,
            )
    old_norm = old.norm(dim=-1)
    for value, why, code in (
        (
            scale * old_norm,
            "resample_scale × the old encoder column's norm: the column kept its old length, scaled",
            "enc_old_length_scaled",
        ),
        (old_norm, "the old encoder column's norm: the column kept its old length", "enc_old_length"),
        (scale / old_norm.clamp_min(1e-12), "resample_scale / the old encoder column's norm", "enc_over_old_length"),
    ):
        if near(lengths, value):
            fail(
                f"{what}: they point along v, but each has length {why} (read back per latent), not resample_scale",
                "encoder column = resample_scale · v exactly: the new column's length doesn't depend on the old column",
                code=code,
            )
