"""adversarial_sources when one source reaches its bound long before the others.

The main probes move every source on every step, so a loop that stops once sources[0] stops changing (a
convergence test on the first source alone) gives the right answer there. Here sources[0] starts at 0.95 under a
gradient that pushes it up, so it sits at 1 after one step, while sources[1] (0.1 and 0.15, pushed up) and
sources[2] (0.9, pushed down) still have n_steps · step_size to travel: all n_steps must be taken.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

import solutions.part8_parameter_decomposition as sol
from tests.checking import expect_matches
from tests.mutants import call

N, STEP = 6, 0.1  # the others travel 0.6: from 0.1 to 0.7, 0.15 to 0.75, 0.9 to 0.3, never reaching a bound


def _run(loss_fn: Callable, init: list, stop_when_first_still: bool) -> torch.Tensor:
    s = [t.detach().clone() for t in init]
    for _ in range(N):
        leaves = [t.clone().requires_grad_(True) for t in s]
        grads = torch.autograd.grad(loss_fn(leaves), leaves)
        new = [(t + STEP * g.sign()).clamp(0, 1) for t, g in zip(s, grads, strict=True)]
        still = torch.equal(new[0], s[0])
        s = new
        if stop_when_first_still and still:
            break
    return torch.cat([t.flatten() for t in s])


def first_saturates_probe(adversarial_sources: Callable, device: Any) -> None:
    """Compare with the reference; name a loop that stops once sources[0] no longer changes."""
    w = [
        torch.tensor([[1.0, 0.5]], device=device),
        torch.tensor([0.7, 1.3], device=device),
        -torch.ones(1, device=device),
    ]
    loss_fn = lambda s: sum((wi * si).sum() for wi, si in zip(w, s, strict=True))
    init = [
        torch.full((1, 2), 0.95, device=device),
        torch.tensor([0.1, 0.15], device=device),
        torch.tensor([0.9], device=device),
    ]
    flat = lambda o: torch.cat([t.flatten() for t in o])
    out = adversarial_sources(loss_fn, [t.clone() for t in init], N, STEP)
    got = torch.cat([torch.as_tensor(o).detach().flatten() for o in out])
    right = _run(loss_fn, init, False)
    hint = (
        "your loop stops once sources[0] no longer changes (it reached its bound 1 after one step) while the other "
        f"sources are still moving: take all n_steps = {N} steps (a source at its bound simply stays there), or stop "
        "only when no source changes"
    )
    expect_matches(
        got,
        right,
        f"the adversarial sources when sources[0] reaches its bound after one step and the others travel all {N} steps",
        [("stop_first_still", hint, _run(loss_fn, init, True))],
        hint="observed: wrong only on this input, where sources[0] saturates at once and sources[1], sources[2] keep "
        f"moving for all {N} steps: e.g. a loop ended early, or a step that depends on another source's state",
        reference=call(sol.adversarial_sources, loss_fn, init, N, STEP, pick=flat),
    )
