"""adversarial_sources: a squashing function (sigmoid, (1 + tanh) / 2) used as the projection in place of
clamp(0, 1).

Two readings: catalogue entries (the ascent with each squashing projection after every step), and a probe for
the family: with step_size = 0 every step is 0, so a clamp leaves the sources at init, while a projection that
squashes moves even values already inside [0, 1] (σ(0.5) = 0.62). What the probe saw is stated, and the
squashing function named when its n-fold application to init is what came back.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from tests.part8_parameter_decomposition_named import _ascent

SQUASHES = {
    "sigmoid": ("a sigmoid, torch.sigmoid(r + step)", torch.sigmoid),
    "tanh": ("(1 + tanh(r + step)) / 2", lambda t: (1 + torch.tanh(t)) / 2),
}
FIX = (
    "project with clamp(r, 0, 1), which leaves values inside [0, 1] as they are; a squashing function maps "
    "every value, 0.5 included, somewhere else, so the sources drift even where the step is 0"
)


def squashing_mistakes(loss_fn: Callable, init: list[Tensor], n_steps: int, step: float):
    """[(code, hint, flat sources)]: the ascent projected with each squashing function after every step."""
    return [
        (
            f"{name}_projection",
            f"a squashing projection: {what} after each step in place of clamp(r + step, 0, 1): {FIX}",
            _ascent(loss_fn, init, n_steps, step, 0.0, f),
        )
        for name, (what, f) in SQUASHES.items()
    ]


def zero_step_probe(fn: Callable, loss_fn: Callable, init: list[Tensor], n_steps: int) -> tuple[str, str] | None:
    """(code, hint) when the sources move with step_size = 0 (every step 0) exactly as σ or (1 + tanh) / 2 applied
    n_steps times to init: the projection squashes values already inside [0, 1]."""
    start = torch.cat([t.detach().flatten() for t in init])
    try:
        out = fn(loss_fn, [t.detach().clone() for t in init], n_steps, 0.0)
        got = torch.cat([torch.as_tensor(o).detach().flatten() for o in out])
    except Exception:  # a probe only: the main check's verdict stands
        return None
    if got.shape != start.shape or torch.allclose(got, start, rtol=1e-5, atol=1e-6):
        return None
    seen = f"with step_size = 0 (every step 0) the sources moved from init ({float(start[0]):.4g} → "
    seen += f"{float(got[0]):.4g})"
    for name, (what, f) in SQUASHES.items():
        x = start.clone()
        for _ in range(n_steps):
            x = f(x)
        if torch.allclose(got, x, rtol=1e-4, atol=1e-5):
            return f"{name}_projection", (
                f"{seen}, exactly as {what} applied after each of the {n_steps} steps: a squashing projection in "
                f"place of the clamp: {FIX}"
            )
    return None  # another map (a min-max rescale, ...): the off-lattice reading lists the causes
