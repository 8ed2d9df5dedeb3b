"""A forward pass whose outputs depend on the other examples of the batch (a statistic over the batch axis: a mean,
norm, max, or centring over dim 0), read by running single examples alone and comparing them with the same examples
inside the batch. A correct forward pass treats every example on its own, so the two agree up to float rounding
(different kernels for different batch sizes: relative 1e-4 leaves a wide margin over float32's 6e-8)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


def batch_mixing_probe(model: Callable, x: Tensor) -> tuple[str, str] | None:
    """(code, hint) when model(x[k:k+1]) differs from model(x)[k:k+1] for one of the first, second and last
    examples."""
    try:
        with torch.no_grad():
            full = model(x.clone())
            if not isinstance(full, Tensor) or full.shape != x.shape:
                return None
            for k in (0, 1, x.shape[0] - 1):
                alone = model(x[k : k + 1].clone())
                if not isinstance(alone, Tensor) or alone.shape != x[k : k + 1].shape:
                    return None
                a, f = alone[0].double(), full[k].double()
                gap = float((a - f).abs().max())
                if gap > 1e-4 * max(1.0, float(f.abs().max())):
                    return "batch_dependent", (
                        f"example {k} run alone gives outputs that differ from the same example inside the batch of "
                        f"{x.shape[0]} (by up to {gap:.3g}): each output depends on the other examples. A statistic "
                        "over the batch axis (a mean, norm, max or centring over dim 0, e.g. x - x.mean(0)) enters "
                        "the forward pass; every example goes through the model on its own"
                    )
    except Exception:  # the learner's code failed on the probe: no evidence either way
        return None
    return None
