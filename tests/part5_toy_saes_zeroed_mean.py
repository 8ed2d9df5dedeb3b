"""resample_advanced read-back: the encoder scale averaged over every latent after the dead latents' columns were
zeroed (or with them counted as 0), i.e. Σ over live j of ‖W_enc[inst, :, j]‖ / d_sae instead of the live mean."""

from __future__ import annotations

import torch
from torch import Tensor

from tests.checking import fail


def zeroed_dead_mean_failure(length: Tensor, want: Tensor, inst_of: Tensor, W_enc: Tensor, dead: Tensor, scale: float):
    """`length` [n]: the new encoder columns' lengths along their directions; `want` [inst]: the right length;
    `W_enc`: the encoder before resampling; `dead` [inst d_sae]."""
    norms = W_enc.norm(dim=1)  # [inst d_sae]
    zeroed = (norms * (~dead).to(norms.dtype)).sum(-1) / dead.shape[-1]  # the dead columns counted as 0
    if torch.allclose(zeroed, want / scale, rtol=1e-3) or not torch.allclose(
        length, scale * zeroed[inst_of], rtol=1e-3
    ):
        return
    got = [round(float(length[inst_of == k].mean()), 4) for k in inst_of.unique()]
    exp = [round(float(want[k]), 4) for k in inst_of.unique()]
    fail(
        f"the new encoder columns have lengths {got} per instance, expected {exp}: resample_scale times the sum of "
        "the live latents' encoder norms divided by d_sae, i.e. a mean over all latents with the dead latents' "
        "columns counted as 0",
        "average ‖W_enc[inst, :, j]‖ over the live latents only (`norms[~dead[inst]].mean()`): zeroing the dead "
        "columns first and then averaging over every column pulls the mean down by n_live / d_sae",
        code="dead_zeros_averaged",
    )
