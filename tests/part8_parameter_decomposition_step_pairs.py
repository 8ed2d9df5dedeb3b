"""Part 8 adversarial_sources: a wrong number of steps together with a wrong step, named as both.

The catalogue names each slip alone (n_steps - 1 or + 1 steps, a single step; descent instead of ascent, the raw
gradient instead of its sign, no clamp). These are the pairs: the projected ascent of the exercise run with one
count slip and one step slip, on the checker's loss and sources (separated by `audit_catalogues`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

Mistakes = list[tuple[str, str, Tensor]]

STEPS = {
    "one step short (n_steps - 1 steps)": lambda n: n - 1,
    "one step too many (n_steps + 1 steps)": lambda n: n + 1,
    "a single step": lambda n: 1,
}
SLIPS = {  # (sign, direction, clamp)
    "descent instead of ascent (r - step_size · sign(grad))": (-1.0, torch.sign, True),
    "the raw gradient instead of its sign": (1.0, lambda g: g, True),
    "no clamp to [0, 1] after each step": (1.0, torch.sign, False),
}


def _run(loss_fn: Callable, init: list[Tensor], n: int, step: float, slip: tuple) -> Tensor:
    sign, direction, clamp = slip
    s = [t.detach().clone() for t in init]
    for _ in range(n):
        leaves = [t.requires_grad_(True) for t in s]
        grads = torch.autograd.grad(loss_fn(leaves), leaves)
        with torch.no_grad():
            s = [t + sign * step * direction(g) for t, g in zip(leaves, grads, strict=True)]
            s = [t.clamp(0, 1) for t in s] if clamp else s
    return torch.cat([t.detach().flatten() for t in s])


def step_pairs(loss_fn: Callable, init: list[Tensor], n: int, step: float) -> Mistakes:
    """Every (step count slip, step slip) pair of the projected sign-gradient ascent."""
    out: Mistakes = []
    for count_name, count in STEPS.items():
        for slip_name, slip in SLIPS.items():
            hint = (
                f"two slips: {count_name}, and {slip_name}. Take exactly n_steps steps of "
                "r = clamp(r + step_size · sign(∂loss/∂r), 0, 1)"
            )
            out.append(("two_slips", hint, _run(loss_fn, init, count(n), step, slip)))
    return out
