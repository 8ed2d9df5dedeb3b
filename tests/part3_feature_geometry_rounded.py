"""A result rounded or truncated to a few decimals (round BB): .round(decimals=k), round(x, k) or a truncation
(torch.floor(x * 10**k) / 10**k) makes every value a multiple of 10^-k, a little off the answer. Read back the number of
decimals and name it (used by dimensions_per_feature and both compute_dimensionality checkers)."""

from __future__ import annotations

import torch
from torch import Tensor

from tests.checking import fail


def rounded_output_failure(out: Tensor, right: Tensor, what: str) -> None:
    """Fail (rounded_output) when `out` is `right` rounded or truncated to k = 1..6 decimals (and is not `right`)."""
    if not isinstance(out, Tensor) or out.device.type == "meta" or out.shape != right.shape:
        return
    got, r = out.detach().double().cpu(), right.detach().double().cpu()
    if not torch.isfinite(got).all() or torch.allclose(got, r, rtol=1e-6, atol=1e-9):
        return
    for k in range(1, 7):  # 0 decimals would also read a threshold (0 or 1) as a rounding
        scale = 10.0**k
        for how, value in (
            (f"rounded to {k} decimals (.round(decimals={k}) or round(x, {k}))", torch.round(r * scale) / scale),
            (f"truncated to {k} decimals (torch.floor(x * 1e{k}) / 1e{k}, or int())", torch.floor(r * scale) / scale),
        ):
            if torch.allclose(got, value, rtol=1e-6, atol=1e-7 / scale):
                fail(
                    f"{what} is the right answer {how}: every value is a multiple of {1 / scale:g}",
                    "don't round the result: return the values at the input's full precision (round only when you "
                    "print them)",
                    code="rounded_output",
                )
