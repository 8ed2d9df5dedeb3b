"""Learning-rate schedules: the one home for them. Each maps (step, total steps) to a factor on the base lr.

Pass one as ``lr_scale`` to the training loops (``utils.training.optimize``, ``utils.sae_training.train_sae``).
A schedule with extra settings is bound with a lambda or ``functools.partial``, e.g.
``lambda step, steps: warmup_cosine_lr(step, steps, warmup_steps=steps // 20)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

Schedule = Callable[[int, int], float]


def constant_lr(step: int, steps: int) -> float:
    return 1.0


def linear_lr(step: int, steps: int) -> float:
    """Decays linearly from 1 to 0 over training."""
    return 1 - step / steps


def cosine_decay_lr(step: int, steps: int) -> float:
    """Half a cosine from 1 to 0 over training."""
    return 0.5 * (1 + math.cos(math.pi * step / steps))


def warmup_cosine_lr(step: int, steps: int, warmup_steps: int) -> float:
    """Linear warm-up from 0 to 1 over `warmup_steps`, then half a cosine from 1 to 0 over the remaining steps."""
    if step < warmup_steps:
        return step / warmup_steps
    progress = (step - warmup_steps) / max(1, steps - warmup_steps)
    return 0.5 * (1 + math.cos(math.pi * progress))
