"""latent_frequencies read back as a firing threshold: when the learner's frequencies are exactly the fractions of
tokens with act > t for one t shared by every latent, and every such t is above 0, name the interval of t."""

from __future__ import annotations

import torch
from torch import Tensor

from tests.checking import CheckFailed, fail


def firing_threshold(err: CheckFailed, out: Tensor, acts: Tensor) -> None:
    """acts: [batch seq d_sae] SAE activations of the positions that count (position 0 already dropped)."""
    a = acts.detach().reshape(-1, acts.shape[-1]).double().cpu()
    n = a.shape[0]
    counts = out.detach().double().cpu() * n
    if not torch.isfinite(counts).all() or not torch.allclose(counts, counts.round(), atol=1e-3):
        return
    c = counts.round().long().clamp(0, n)
    s = torch.cat([a.sort(0, descending=True).values, torch.full_like(a[:1], -torch.inf)])  # s[n] = -inf
    cols = torch.arange(a.shape[1])
    lo = float(s[c, cols].max())  # act > t must fail from the c-th largest on: t >= s[c]
    above = c > 0
    hi = float(s[c[above] - 1, cols[above]].min()) if above.any() else torch.inf  # ... and hold for the top c
    if not lo < hi or lo <= 0:
        return
    named = [t for t in (1e-1, 5e-2, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6) if lo <= t < hi]
    near = f" (e.g. {named[0]:g})" if named else ""
    fail(
        err.message,
        f"your frequencies are exactly the fraction of tokens with act > t for one threshold t in [{lo:.4g}, "
        f"{hi:.4g}){near} for every latent: that is a threshold above 0, so small positive activations go "
        "uncounted. A latent fires when its activation is > 0 (acts > 0), nothing higher",
        code="firing_threshold",
    )
