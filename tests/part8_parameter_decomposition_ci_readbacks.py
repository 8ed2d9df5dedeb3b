"""Part 8, causal_importance: read-backs for two mistakes seen in held-out round AX.

* `batch_statistics`: h = V a standardised (or centred) over the batch, a BatchNorm habit. Such importances also
  ignore a rescaling of V's rows or of a, so once the learner's importances are seen to depend on the other
  examples of the batch, this read-back (the formula on h standardised over axis 0) names the cause;
* `bias_twice`: b_out added a second time, z = Σ_j w_out GELU(w_in h + b_in) + 2 b_out.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

Mistakes = list[tuple[str, str, Tensor]]


def _from_h(p: dict[str, Tensor], h: Tensor, extra_bias: float = 0.0) -> Tensor:
    hidden = F.gelu(h[..., None] * p["w_in"] + p["b_in"])
    return ((hidden * p["w_out"]).sum(-1) + (1 + extra_bias) * p["b_out"]).clamp(0, 1)


def batch_statistics(p: dict[str, Tensor], lower: Tensor) -> Mistakes:
    """[(code, hint, value)] for each batch standardisation of h that reproduces `lower` (empty when none does)."""
    with torch.no_grad():
        h = torch.einsum("bid,icd->bic", p["a"], p["V"])
        centred = h - h.mean(0, keepdim=True)
        seen = {
            "standardised over the batch ((h - h.mean(0)) / h.std(0))": centred / h.std(0, keepdim=True),
            "standardised over the batch ((h - h.mean(0)) / h.std(0, unbiased=False))": centred
            / h.std(0, unbiased=False, keepdim=True),
            "centred over the batch (h - h.mean(0))": centred,
        }
    found: Mistakes = []
    for how, h2 in seen.items():
        value = _from_h(p, h2)
        if value.shape == lower.shape and torch.allclose(lower, value.to(lower.dtype), rtol=1e-4, atol=1e-5):
            hint = (
                f"your importances are the formula's on h = V a {how}, a BatchNorm habit: an example's importances "
                "then depend on the other examples in its batch. Use h = V a as it is, each example on its own"
            )
            found.append(("batch_standardised", hint, value))
    return found


def bias_twice(p: dict[str, Tensor]) -> Mistakes:
    with torch.no_grad():
        h = torch.einsum("bid,icd->bic", p["a"], p["V"])
        value = _from_h(p, h, extra_bias=1.0)
    hint = (
        "your importances are the clamp of z + b_out: b_out was added a second time (z already holds it). "
        "z = Σ_j w_out GELU(w_in h + b_in) + b_out, with b_out added once, and both sigmoids read that same z"
    )
    return [("b_out_twice", hint, value)]
