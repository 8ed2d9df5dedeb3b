"""matryoshka_loss read back as a weighted sum of the per-prefix losses: when the learner's loss is exactly
Σ_m w_m · L_m over the m of prefix_sizes with weights other than 1, name the weights (and, when they follow a
simple rule such as 1/m or 1/len(prefix_sizes), say so as a possible cause)."""

from __future__ import annotations

import torch
from torch import Tensor

from tests.checking import CheckFailed, fail


def weighted_prefixes(err: CheckFailed, basis: Tensor, y: Tensor, sizes: tuple[int, ...]) -> None:
    """basis: [rows, d_sae + 1] per-prefix losses for m = 0..d_sae (float64), y: the learner's loss flattened."""
    cols = sorted(set(sizes))
    if basis.shape[0] <= len(cols):
        return
    sub = basis[:, cols]
    w = torch.linalg.lstsq(sub, y[:, None]).solution.flatten()
    if not torch.allclose(sub @ w, y, rtol=1e-4, atol=1e-6) or torch.allclose(w, torch.ones_like(w), rtol=1e-3):
        return
    expect = torch.tensor([float(sizes.count(m)) for m in cols], dtype=w.dtype)
    ratio = w / expect
    rules = {"1/m (each prefix's loss divided by its size m)": torch.tensor([1.0 / m for m in cols])}
    rules["1/len(prefix_sizes) (a mean over the prefixes, not a sum)"] = torch.full_like(ratio, 1 / len(sizes))
    rules["m / d_sae (each prefix's loss scaled by its share of the latents)"] = torch.tensor(
        [m / (basis.shape[1] - 1) for m in cols]
    )
    named = [r for r, v in rules.items() if torch.allclose(ratio, v.to(ratio), rtol=1e-3)]
    got = ", ".join(f"m = {m}: {float(c):.4g}" for m, c in zip(cols, ratio, strict=True))
    why = f" ({'; '.join(named)}?)" if named else ""
    fail(
        err.message,
        f"your loss is exactly a weighted sum of the right prefix losses, with weight {got}{why}: each m in "
        f"prefix_sizes={tuple(sizes)} counts with weight 1, loss = Σ_m mean_d_in((acts[..., :m] · W_dec[:, :m] + "
        "b_dec - h)²), no division or scaling per prefix",
        code="prefix_weights",
    )
