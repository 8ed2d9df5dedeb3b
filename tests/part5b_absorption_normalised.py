"""matryoshka_loss candidates where each prefix's squared error is divided by the size of h (a normalised MSE,
the idea of part 5's `normalised_reconstruction`): the error summed or averaged over d_in, over h's squared norm
(or mean square) per example, its batch mean per instance, or h's variance over the batch. mean/mean equals
sum/sum, so the distinct readings are that ratio times 1, 1/d_in or d_in, for each denominator."""

from __future__ import annotations

import torch
from torch import Tensor

_FIX = (
    ": a normalised MSE (the error relative to the size of h). The loss is the plain MSE of each prefix's "
    "reconstruction, divided by nothing about h: sum over m of ((acts[..., :m] · W_dec[:, :m] + b_dec - h) ** 2)"
    ".mean(-1)"
)


def normalised_prefixes(acts: Tensor, W: Tensor, b: Tensor, h: Tensor, sizes: tuple[int, ...]) -> list:
    """(code, hint, value) rows: Σ_m ‖ĥ_m − h‖² · factor / S for the (factor, S) pairs named in the docstring."""
    d = h.shape[-1]
    err = sum((torch.einsum("bis,isd->bid", acts[..., :m], W[:, :m]) + b - h).pow(2).sum(-1) for m in sizes)
    sq = h.pow(2).sum(-1)  # ‖h‖², [batch inst]
    per_ex, batch = "that example's", "the batch's mean (per instance)"
    readings = [
        (f"mean_d (ĥ − h)² divided by {per_ex} mean_d h² (= ‖ĥ − h‖² / ‖h‖²)", 1.0, sq),
        (f"mean_d (ĥ − h)² divided by {per_ex} ‖h‖²", 1.0 / d, sq),
        (f"‖ĥ − h‖² divided by {per_ex} mean_d h²", float(d), sq),
        (f"mean_d (ĥ − h)² divided by {batch} mean_d h²", 1.0, sq.mean(0, keepdim=True)),
        (f"mean_d (ĥ − h)² divided by {batch} ‖h‖²", 1.0 / d, sq.mean(0, keepdim=True)),
        (f"‖ĥ − h‖² divided by {batch} mean_d h²", float(d), sq.mean(0, keepdim=True)),
        ("mean_d (ĥ − h)² divided by h's variance over the batch (mean over d_in)", 1.0, h.var(0, False).sum(-1)),
    ]
    return [("normalised_mse", f"that is each prefix's {name}{_FIX}", err * f / s) for name, f, s in readings]
