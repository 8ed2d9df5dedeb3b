"""W_dec_normalized read-back: the config's eps put somewhere other than the norm (added to every entry before the
norm, inside the square root, squared ...), each candidate recomputed from W_dec with the checker's eps."""

from __future__ import annotations

import torch
from torch import Tensor

from tests.checking import fail


def eps_placement_failure(got: Tensor, W: Tensor, eps: float) -> None:
    """`got`: W_dec_normalized read with cfg.weight_normalize_eps = eps; `W`: W_dec [..., d_in] (float64)."""
    norms = W.norm(dim=-1, keepdim=True)
    right = W / (norms + eps)
    candidates = (
        (
            "eps added to every entry before the norm: W / (W + eps).norm(dim=-1)",
            W / (W + eps).norm(dim=-1, keepdim=True),
        ),
        ("eps added to every entry, numerator too: (W + eps) / (W + eps).norm(dim=-1)", None),
        ("eps inside the square root: W / sqrt(‖W‖² + eps)", W / (norms.pow(2) + eps).sqrt()),
        ("eps squared inside the square root: W / sqrt(‖W‖² + eps²)", W / (norms.pow(2) + eps**2).sqrt()),
        ("eps added to the squared entries: W / sqrt(Σ (W² + eps))", W / (W.pow(2) + eps).sum(-1, True).sqrt()),
    )
    for what, cand in candidates:
        if cand is None:
            shifted = W + eps
            cand = shifted / shifted.norm(dim=-1, keepdim=True)
        if not torch.allclose(cand, right, rtol=1e-5, atol=1e-9) and torch.allclose(got, cand, rtol=1e-5, atol=1e-8):
            fail(
                f"with cfg.weight_normalize_eps = {eps:g}, W_dec_normalized equals {what} (read back on every row)",
                "add the eps to the row's norm, once, after the square root: W_dec / (W_dec.norm(dim=-1, "
                "keepdim=True) + self.cfg.weight_normalize_eps)",
                code="eps_placement",
            )
