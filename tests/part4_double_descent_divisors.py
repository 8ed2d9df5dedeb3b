"""generate_dataset's examples divided by one number shared by many examples (the mean example norm, a per-instance
norm) instead of each example's own norm: the present values are then still uniform, on [0, 1 / divisor]; and
examples divided by the mean of their own values (their values then sum to the number of features, or of present
ones)."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def common_divisor_diagnosis(x: Tensor, delta: float) -> tuple[str, str] | None:
    """(code, hint) when, in every instance, the present values of x [examples inst feats] (float64) are uniform on
    [0, m_i]: U[0, 1] draws divided by one number per instance (1 / m_i), not per example. Kolmogorov-Smirnov at
    failure probability delta per instance (DKW: sup |ECDF - F| > eps with probability <= 2 exp(-2 n eps²)), plus
    0.01 for m_i read off the sample's maximum. Correctly normalised values are not uniform on [0, max] (examples with
    one present feature put an atom at 1), so this never fires on them."""
    if x.ndim != 3:
        return None
    tops = []
    for i in range(x.shape[1]):
        v = x[:, i][x[:, i] > 0].sort().values
        n = v.numel()
        if n < 500:
            return None
        m = float(v[-1])
        eps = math.sqrt(math.log(2 / delta) / (2 * n)) + 0.01
        ecdf = (v.new_ones(n).cumsum(0)) / n
        if float((ecdf - v / m).abs().max()) > eps:
            return None
        tops.append(m)
    norms = x.norm(dim=-1)
    means = (float(norms.mean()), float(norms[norms > 0].mean()))  # with and without the empty examples
    divisors = ", ".join(f"{1 / t:.3g}" for t in tops[:4])
    seen = (
        f"the present values are uniform on [0, m] in every instance (m = {', '.join(f'{t:.3g}' for t in tops[:4])})"
        f": U[0, 1] draws divided by one number d = 1/m ({divisors}) shared by many examples, so the example norms "
        f"are spread (their mean: {means[0]:.4g} over all examples, {means[1]:.4g} over the non-empty ones)"
    )
    if min(tops) > 1e4:  # divided by a floor such as clamp_min(1e-12): the divisor itself was 0
        cause = (
            f"the divisor is about {1 / max(tops):.1g}, a clamp floor: the norm you divided by was 0. "
            "x.norm(-1, keepdim=True) reads -1 as the order p, not as dim (a p = -1 'norm' of the whole tensor, 0 "
            "once any entry is 0): pass dim by keyword, x.norm(dim=-1, keepdim=True)"
        )
    elif max(tops) - min(tops) <= 0.03 * max(tops):
        cause = "every example was divided by the same number" + (
            ", and the example norms average 1: the mean example norm (x.norm(dim=-1, keepdim=True)"
            ".mean()) divides them all"
            if min(abs(m - 1) for m in means) < 1e-3
            else " (a mean or other summary of the norms, the norm of a whole batch, or a constant)"
        )
    else:
        cause = "each instance's examples were divided by one number of that instance (a norm or mean over dim 0)"
    return "common_divisor", (
        f"{seen}: {cause}. Divide each example by its own L2 norm over the features: "
        "x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)"
    )


def summary_divisor_diagnosis(x: Tensor) -> tuple[str, str] | None:
    """(code, hint) when every non-empty example of x [examples inst feats] was divided by the mean of its values
    instead of its L2 norm: over all the features its values then sum to n_features, over the present ones to their
    count. Either sum is exact (to float32 rounding) in every example, which no L2-normalised data gives."""
    sums, count = x.sum(-1), (x > 0).sum(-1).double()
    nonzero = count > 0
    if int(nonzero.sum()) < 100:
        return None
    close = lambda a, b: bool(torch.allclose(a[nonzero], b[nonzero], rtol=1e-5, atol=0))
    f = x.shape[-1]
    if close(sums, torch.full_like(sums, float(f))):
        how = f"the mean over all {f} features (x.mean(-1, keepdim=True)): every example's values sum to {f}"
    elif close(sums, count) and bool((count[nonzero] > 1).any()):
        how = "the mean of its present values: every example's values sum to its number of present features"
    else:
        return None
    return "mean_divisor", (
        f"every example was divided by {how}; divide each example by its own L2 norm over the features, "
        "x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12), so that ‖x‖ = 1"
    )
