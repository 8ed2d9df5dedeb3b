"""The one training loop for toy models (sections 1-3, 7 and 8); learning-rate schedules live in `utils.schedules`.

A model trained here needs two methods: `generate_batch(batch_size) -> batch` and
`calculate_loss(out, batch) -> scalar`, and `forward(batch) -> out`. Losses are summed over
instances, so one Adam optimiser trains every instance independently in one loop.
"""

from __future__ import annotations

import torch
from torch import nn
from tqdm.auto import tqdm

from utils.schedules import Schedule, constant_lr


def optimize(
    model: nn.Module,
    batch_size: int = 1024,
    steps: int = 5_000,
    log_freq: int = 100,
    lr: float = 1e-3,
    lr_scale: Schedule = constant_lr,
    progress: bool = True,
) -> list[float]:
    """Train `model` with Adam; returns the loss every `log_freq` steps (also shown on the tqdm bar)."""
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be positive, got steps={steps}, batch_size={batch_size}")
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    bar = tqdm(range(steps), disable=not progress, mininterval=0.5)
    for step in bar:
        for group in optimizer.param_groups:
            group["lr"] = lr * lr_scale(step, steps)
        batch = model.generate_batch(batch_size)
        loss = model.calculate_loss(model(batch), batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % log_freq == 0 or step == steps - 1:
            losses.append(loss.item())
            bar.set_postfix(loss=f"{losses[-1]:.4g}", lr=f"{optimizer.param_groups[0]['lr']:.2g}")
    return losses
