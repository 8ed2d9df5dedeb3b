"""Part 5a metric readings where the measure itself is swapped, as catalogue entries (code, hint, value) built from
the checker's own inputs: auxk_loss's error measured as |e - ê| (not squared), L0 as a soft count min(a, 1), the FVE
total centred on the batch median, and feature recovery with a norm guard ε added to each norm.

Each entry is the right computation with one thing changed, so a correct implementation never meets one.
"""

from __future__ import annotations

import torch
from torch import Tensor

Mutant = tuple[str, str, Tensor]


def auxk_error_measure(pre: Tensor, residual: Tensor, dead: Tensor, W_dec: Tensor, k_aux: int) -> list[Mutant]:
    """auxk_loss with the error's absolute value (mean |e - ê|) instead of its square."""
    top = torch.where(dead, pre, -torch.inf).topk(k_aux, dim=-1)
    values = torch.where(top.values.isfinite(), top.values, torch.zeros_like(top.values))
    acts = torch.zeros_like(pre).scatter(-1, top.indices, values)
    err = (residual - torch.einsum("bis,isd->bid", acts, W_dec)).detach()
    hint = (
        "equals the mean over d_in of |residual - decoded| (an absolute error): the AuxK loss is the squared error, "
        "(residual - decoded).pow(2).mean(-1)"
    )
    return [("abs_error", hint, err.abs().mean(-1))]


def l0_soft_count(acts: Tensor) -> list[Mutant]:
    """L0 as a soft count: each activation counted as min(|a|, 1), so values below 1 count fractionally."""
    hint = (
        "equals the sum of acts.clamp(max=1) (a soft count: an activation below 1 counts as a fraction of a latent): "
        "count each non-zero latent as 1, (acts != 0).sum(-1), then mean over the batch"
    )
    return [("soft_count", hint, acts.abs().clamp(max=1).sum(-1).mean(0))]


def fve_centre(h: Tensor, h_rec: Tensor) -> list[Mutant]:
    """FVE with the total centred on the batch median instead of the batch mean."""
    res = (h - h_rec).pow(2).sum((0, 2))
    total = (h - h.median(0, keepdim=True).values).pow(2).sum((0, 2))
    hint = (
        "equals the FVE with the total centred on the batch median (h.median(0)): centre on the mean over the batch, "
        "Σ(h - h.mean(0))²"
    )
    return [("centred_on_median", hint, 1 - res / total)]


def recovery_norm_eps(W_feat: Tensor, W_dec: Tensor) -> list[Mutant]:
    """Feature recovery with a guard ε (1e-1, 1e-2, 1e-3) added to both norms, which biases every cosine low."""
    out: list[Mutant] = []
    for eps in (1e-1, 1e-2, 1e-3):
        d_hat = W_dec / (W_dec.norm(dim=-1, keepdim=True) + eps)
        f_hat = W_feat / (W_feat.norm(dim=1, keepdim=True) + eps)
        hint = (
            f"equals the reference with ε = {eps:g} added to each norm (x / (‖x‖ + {eps:g})): that shrinks every "
            "cosine. Normalise by the norm itself (F.normalize, or a guard no larger than ~1e-8)"
        )
        out.append(("norm_eps", hint, torch.einsum("isd,idf->isf", d_hat, f_hat).amax(1)))
    return out
