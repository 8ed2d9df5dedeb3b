"""Measurements on trained SAEs that the figures need (section 5). Imports no section code."""

from __future__ import annotations

import einops
import torch
from torch import Tensor, nn


@torch.no_grad()
def single_feature_magnitudes(sae: nn.Module, W_features: Tensor, n_per_feature: int = 40) -> tuple[Tensor, Tensor]:
    """Shrinkage data: inputs h = t·W_i with exactly one feature i on at a value t ~ U[0, 1].

    `sae(h)` must return (..., h_reconstructed) as its 4th output; W_features is [inst d_in feats].
    Returns (t, (h_rec · W_i) / ‖W_i‖²) flattened over examples, instances and features (on the CPU):
    a perfect reconstruction gives back t, a shrunk one less.
    """
    n_inst, _, n_feats = W_features.shape
    t = torch.rand(n_per_feature, n_inst, n_feats, device=W_features.device)
    h = einops.einsum(t, W_features, "n inst feats, inst d feats -> n feats inst d").flatten(0, 1)
    h_rec = sae(h)[3].unflatten(0, (n_per_feature, n_feats))  # [n feats inst d]
    along = einops.einsum(h_rec, W_features, "n feats inst d, inst d feats -> n inst feats")
    return t.flatten().cpu(), (along / W_features.pow(2).sum(1)).flatten().cpu()
