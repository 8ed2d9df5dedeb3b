"""Part 8, adversarial_sources: the gradient rescaled where its sign belongs.

The catalogue names the raw gradient (no sign) and the gradient over its L2 norm per source. Other rescalings a
learner reaches for (an "infinity-norm" step, g / max|g|, per source or over every source; g over the L2 norm of
every source together; g / mean|g|) keep the largest moves near step_size, so the output stays near the lattice of
whole steps but off it. Each is run from init like the reference (clamp after every step) and named by its
normaliser.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

Mistakes = list[tuple[str, str, Tensor]]

HINT = (
    "each step moves every entry by exactly step_size in the direction of its gradient's sign, whatever the gradient's "
    "size: r + step_size * sign(∂loss/∂r), then the clamp"
)


def _run(loss_fn: Callable, init: list[Tensor], n: int, step: float, scale: Callable) -> Tensor:
    s = [t.detach().clone() for t in init]
    for _ in range(n):
        leaves = [t.requires_grad_(True) for t in s]
        grads = torch.autograd.grad(loss_fn(leaves), leaves)
        with torch.no_grad():
            divisors = scale(grads)
            s = [(t + step * g / d.clamp_min(1e-12)).clamp(0, 1) for t, g, d in zip(s, grads, divisors, strict=True)]
    return torch.cat([t.detach().flatten() for t in s])


def adversarial_scaled_steps(loss_fn: Callable, init: list[Tensor], n: int, step: float) -> Mistakes:
    """(code, hint, flat sources) for the gradient divided by each normaliser instead of its sign."""
    every = lambda f: lambda gs: [f(torch.cat([g.flatten() for g in gs]))] * len(gs)
    scales = {
        "its largest |entry| per source (g / g.abs().max())": lambda gs: [g.abs().max() for g in gs],
        "the largest |entry| over every source": every(lambda g: g.abs().max()),
        "the L2 norm of every source's gradient together": every(lambda g: g.norm()),
        "its mean |entry| per source (g / g.abs().mean())": lambda gs: [g.abs().mean() for g in gs],
    }
    found: Mistakes = []
    for what, scale in scales.items():
        try:
            flat = _run(loss_fn, init, n, step, scale)
        except RuntimeError:  # a loss the probe cannot differentiate twice: skip the candidate
            continue
        found.append(("scaled_gradient", f"your steps are the gradient divided by {what}, not its sign: {HINT}", flat))
    return found
