"""resample_simple and resample_advanced with tied weights: W_dec is a transposed view of W_enc, so the decoder row
and the encoder column of a latent are the same numbers, and whichever is written last is what stays. The reference
writes the encoder column last, so each resampled latent's column has length resample_scale (simple) or
resample_scale · mean live encoder norm (advanced)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from solutions import part5_toy_saes as ref
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


def tied_advanced(impl: Any, device: torch.device, call_resampler: Any, reference_sae: Any) -> None:
    """resample_advanced on a tied SAE (sae._W_dec is None): the dead latents' columns change, the live ones stay, and
    each new column has length resample_scale · (mean norm of the live encoder columns), written last. The main check
    runs untied, where a write through sae._W_dec or the encoder written before the decoder goes unseen."""
    scale, n_inst, d_in, d_sae, batch = 0.37, 2, 3, 6, 16
    sae = reference_sae(
        ref.ToySAE, device, n_inst=n_inst, d_in=d_in, d_sae=d_sae, sparsity_coeff=0.1, tied_weights=True
    )
    gen = torch.Generator().manual_seed(11)
    h = (torch.randn(batch, n_inst, d_in, generator=gen) + 1.5).to(device)  # every loss non-zero
    sae.generate_batch = lambda batch_size: h[:batch_size].clone()
    dead = torch.zeros(n_inst, d_sae, dtype=torch.bool, device=device)
    dead[0, [1, 3, 4]], dead[1, [0, 5]] = True, True
    frac = torch.full((5, n_inst, d_sae), 0.1, device=device).masked_fill(dead, 0.0)
    before = sae.W_enc.detach().clone()
    call_resampler(lambda: impl(sae, frac, scale, batch))
    changed = (sae.W_enc.detach() != before).any(1)
    if not torch.equal(changed, dead):
        fail(
            f"with tied weights (cfg.tied_weights, so sae._W_dec is None) {int(changed.sum())} latents changed, "
            f"expected the {int(dead.sum())} dead ones",
            "index through sae.W_dec and sae.W_enc, which share storage when tied; change only the dead latents",
            code="tied_weights",
        )
    norms = before.double().norm(dim=1)  # [inst d_sae]
    live_mean = torch.stack([norms[k][~dead[k]].mean() for k in range(n_inst)])
    want = (scale * live_mean)[:, None].expand(n_inst, d_sae)[dead]
    lengths = sae.W_enc.detach().double().norm(dim=1)[dead]
    if torch.allclose(lengths, want, rtol=1e-4):
        return
    if torch.allclose(lengths, torch.ones_like(lengths), rtol=1e-4):
        fail(
            "with tied weights (sae._W_dec is None) the resampled encoder columns have length 1, not resample_scale · "
            "mean live encoder norm: the unit decoder write came after the encoder write and overwrote it, since "
            "W_dec is a view of W_enc's storage",
            "write the decoder row first and the encoder column (direction · resample_scale · mean live norm) last: "
            "with tied weights the last write is what stays",
            code="tied_enc_overwritten",
        )
    fail(
        f"with tied weights (sae._W_dec is None) the resampled encoder columns have lengths between "
        f"{float(lengths.min()):.4g} and {float(lengths.max()):.4g}, expected resample_scale · mean live encoder "
        f"norm = {[round(float(v), 4) for v in scale * live_mean]} per instance",
        "W_dec is a view of W_enc when tied: write the decoder row, then the encoder column (direction · "
        "resample_scale · mean norm of the live latents' encoder columns, measured before any write)",
        code="tied_enc_length",
    )
