"""A forward pass whose outputs depend on the other examples of the batch (a statistic over the batch axis: a mean,
norm, max, or centring over dim 0), read by running single examples alone and comparing them with the same examples
inside the batch. A correct forward pass treats every example on its own, so the two agree up to float rounding
(different kernels for different batch sizes: relative 1e-4 leaves a wide margin over float32's 6e-8)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


def _read_back(full: Tensor, x: Tensor, reference: Callable | None) -> str | None:
    """The batch statistic on the input whose reference output equals `full` (within 1e-4 relative), if any."""
    if reference is None:
        return None
    candidates = (
        ("x - x.mean(0): the input centred over the batch axis", lambda t: t - t.mean(0, keepdim=True)),
        ("x / x.norm(dim=0): the input normalised over the batch axis", lambda t: t / t.norm(dim=0, keepdim=True)),
        ("x / x.amax(0): the input divided by its max over the batch axis", lambda t: t / t.amax(0, keepdim=True)),
    )
    for label, edit in candidates:
        with torch.no_grad():
            want = reference(edit(x)).double()
        if want.isfinite().all() and float((want - full).abs().max()) <= 1e-4 * max(1.0, float(want.abs().max())):
            return label
    return None


def batch_mixing_probe(model: Callable, x: Tensor, reference: Callable | None = None) -> tuple[str, str] | None:
    """(code, hint) when model(x[k:k+1]) differs from model(x)[k:k+1] for one of the first, second and last
    examples. `reference` (the right forward on a tensor) reads back which batch statistic of the input, if any of
    a few, reproduces the output; otherwise the hint states the observation and names no cause."""
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
                    seen = (
                        f"example {k} run alone gives outputs that differ from the same example inside the batch of "
                        f"{x.shape[0]} (by up to {gap:.3g}): each output depends on the other examples"
                    )
                    found = _read_back(full.double(), x, reference)
                    if found:
                        return "batch_dependent", (
                            f"{seen}. Read back: your outputs equal the right forward pass on {found}. Every "
                            "example goes through the model on its own: no statistic over dim 0"
                        )
                    return "batch_dependent", (
                        f"{seen}, so something in the forward pass reads across the batch axis (dim 0). It is not "
                        "the input centred or normalised over that axis (x - x.mean(0), x / x.norm(dim=0), "
                        "x / x.amax(0): each gives other outputs). Every example must go through the model on its own"
                    )
    except Exception:  # the learner's code failed on the probe: no evidence either way
        return None
    return None
