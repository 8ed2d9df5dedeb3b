"""resample_simple with tied weights: W_dec is a transposed view of W_enc, so the decoder row and the encoder column of
a latent are the same numbers, and whichever is written last is what stays. The reference writes the encoder column
(v · resample_scale) last, so each resampled latent's column has length resample_scale."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from tests.checking import fail


def tied_lengths(sae: Any, dead: Tensor, scale: float) -> None:
    """The resampled encoder columns of a tied SAE [inst d_in d_sae] at the `dead` latents [inst d_sae] must have
    length `scale`; length 1 is the unit decoder write landing after (and over) the encoder write."""
    lengths = sae.W_enc.detach().double().norm(dim=1)[dead]
    if torch.allclose(lengths, torch.full_like(lengths, scale), rtol=1e-4):
        return
    lo, hi = float(lengths.min()), float(lengths.max())
    if torch.allclose(lengths, torch.ones_like(lengths), rtol=1e-4):
        fail(
            f"with tied weights (sae._W_dec is None) the resampled encoder columns have length 1, not resample_scale "
            f"= {scale}: the unit decoder write came after the encoder write and overwrote it, since W_dec is a view "
            "of W_enc's storage",
            "write the decoder row v first and the encoder column v · resample_scale last (with tied weights the "
            "last write is what stays)",
            code="tied_enc_overwritten",
        )
    fail(
        f"with tied weights (sae._W_dec is None) the resampled encoder columns have lengths between {lo:.4g} and "
        f"{hi:.4g}, expected resample_scale = {scale}",
        "W_dec is a view of W_enc when tied: write the decoder row v, then the encoder column v · resample_scale",
        code="tied_enc_length",
    )
