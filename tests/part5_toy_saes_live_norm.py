"""resample_simple's encoder columns scaled by resample_advanced's rule, read back: length = resample_scale times the
mean norm of the instance's live encoder columns (from before the call), not resample_scale alone."""

from __future__ import annotations

import torch
from torch import Tensor

from tests.checking import fail


def live_norm_factor(enc: Tensor, rows: Tensor, old_W_enc: Tensor, dead: Tensor, scale: float) -> None:
    """`enc`, `rows` [n d_in]: the new encoder columns and decoder rows of the dead latents (dead.nonzero() order);
    `old_W_enc` [inst d_in d_sae] before the call; `dead` [inst d_sae]. Fails when enc = scale · mean live norm · v."""
    inst_of = dead.nonzero()[:, 0]
    live = torch.stack(
        [old_W_enc[k][:, ~dead[k]].double().norm(dim=0).mean() for k in range(dead.shape[0])]
    )  # [inst]; NaN where no latent is alive
    want = rows.double() * (scale * live[inst_of])[:, None]
    if not bool(torch.isfinite(want).all()) or not torch.allclose(enc.double(), want, rtol=1e-4, atol=1e-6):
        return
    fail(
        "the new encoder columns point along v with length resample_scale × (the mean norm of the instance's live "
        f"encoder columns before the call: {', '.join(f'{float(x):.4g}' for x in live[inst_of.unique()])} per "
        f"instance), not resample_scale = {scale}: that is resample_advanced's rule",
        "in resample_simple the encoder column is resample_scale · v exactly; the mean live encoder norm belongs to "
        "resample_advanced only",
        code="enc_live_norm_scaled",
    )
