"""The one training loop for sparse autoencoders (sections 5, 5a, 5b and 6), with logging and resampling.

It trains any SAE that follows the `TrainableSAE` protocol below (section 5's `ToySAE` and every
subclass do). Resampling is a function passed in as `resampler`, called with the SAE, the recent
fraction-active window and the encoder scale (see `Resampler`). This module imports no section code.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from utils.schedules import Schedule, constant_lr


class TrainableSAE(Protocol):
    """What `train_sae` needs from an SAE.

    * ``generate_batch(batch_size) -> h: [batch inst d_in]``: its training data (override it, or assign a
      function to the instance attribute, to train on activations from any source);
    * ``forward(h) -> (loss_dict, loss, acts_post: [batch inst d_sae], h_reconstructed)``;
    * ``W_enc: [inst d_in d_sae]`` and ``W_dec_normalized: [inst d_sae d_in]`` (for the snapshots);
    * ``LATENT_AXES``: for each per-latent parameter, the axis that indexes latents (so the optimiser
      state of resampled latents can be reset);
    * ``reset_latent_extras(dead)``: reset the architecture's own per-latent state of resampled latents.
    """

    LATENT_AXES: ClassVar[dict[str, int]]
    W_enc: Tensor

    def generate_batch(self, batch_size: int) -> Tensor: ...
    def __call__(self, h: Tensor) -> tuple[dict[str, Tensor], Tensor, Tensor, Tensor]: ...
    def named_parameters(self): ...
    def parameters(self): ...
    def reset_latent_extras(self, dead: Tensor) -> None: ...

    @property
    def W_dec_normalized(self) -> Tensor: ...


class Resampler(Protocol):
    """A resampling scheme: ``resampler(sae, frac_active_in_window, resample_scale)`` changes the dead latents'
    parameters in place. `frac_active_in_window` is ``[window inst d_sae]``; bind any other setting first,
    e.g. ``functools.partial(resample_advanced, batch_size=512)``."""

    def __call__(self, sae: TrainableSAE, frac_active_in_window: Tensor, resample_scale: float) -> None: ...


def dead_mask(frac_active_in_window: Tensor) -> Tensor:
    """[window inst d_sae] -> [inst d_sae]: latents that fired on no example at any step of the window."""
    return (frac_active_in_window <= 0).all(dim=0)


@dataclass
class SAETrainingLog:
    """What `train_sae` records. Tensors are on the CPU; `frac_active` rows are averages over `log_freq` steps."""

    steps: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    frac_active: list[Tensor] = field(default_factory=list)  # each [inst d_sae]
    l0: list[Tensor] = field(default_factory=list)  # each [inst]
    resample_steps: list[int] = field(default_factory=list)
    n_resampled: list[Tensor] = field(default_factory=list)  # each [inst]
    snapshot_steps: list[int] = field(default_factory=list)
    W_enc: list[Tensor] = field(default_factory=list)  # each [inst d_in d_sae]
    W_dec: list[Tensor] = field(default_factory=list)  # each [inst d_sae d_in], normalised

    def frac_active_tensor(self) -> Tensor:
        """[n_logs inst d_sae]."""
        return torch.stack(self.frac_active)

    def snapshots(self) -> tuple[Tensor, Tensor]:
        """([frames inst d_in d_sae], [frames inst d_sae d_in])."""
        return torch.stack(self.W_enc), torch.stack(self.W_dec)


def make_adam(params: list[nn.Parameter], lr: float) -> torch.optim.Adam:
    """Adam, fused where the device supports it: on a CPU the tiny toy tensors make the per-parameter
    overhead of the default implementation the slowest part of a step (about 3x slower, measured)."""
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, ValueError, TypeError):
        return torch.optim.Adam(params, lr=lr)


def reset_optimizer_state(optimizer: torch.optim.Optimizer, sae: TrainableSAE, dead: Tensor) -> None:
    """Zero Adam's moment estimates for the resampled latents, so stale momentum can't undo the resampling."""
    axes = sae.LATENT_AXES
    params = dict(sae.named_parameters())
    for name, axis in axes.items():
        param = params.get(name)
        if param is None or param not in optimizer.state:
            continue
        mask = dead
        # Put the latent axis right after the instance axis, then index [inst, latent].
        for key in ("exp_avg", "exp_avg_sq"):
            state = optimizer.state[param].get(key)
            if state is not None:
                moved = state.movedim(axis % state.ndim, 1)
                moved[mask] = 0.0


def _snapshot(sae: nn.Module, log: SAETrainingLog, step: int) -> None:
    with torch.no_grad():
        log.snapshot_steps.append(step)
        log.W_enc.append(sae.W_enc.detach().cpu().clone())
        log.W_dec.append(sae.W_dec_normalized.detach().cpu().clone())


def train_sae(
    sae: TrainableSAE,
    steps: int = 10_000,
    batch_size: int = 1024,
    lr: float = 1e-3,
    lr_scale: Schedule = constant_lr,
    log_freq: int = 50,
    resampler: Resampler | None = None,
    resample_freq: int = 2_500,
    resample_window: int = 500,
    resample_scale: float = 0.5,
    snapshot_freq: int | None = None,
    progress: bool = True,
) -> SAETrainingLog:
    """Train `sae` with Adam on `sae.generate_batch(batch_size)`; returns a `SAETrainingLog`.

    resampler: None (no resampling) or a `Resampler`. Every `resample_freq` steps (and not in the last
    `resample_window` steps, so resampled latents get time to settle), it is called on the latents that
    were dead over the last `resample_window` steps; then their optimiser state is zeroed and
    `sae.reset_latent_extras(dead)` resets the architecture's own per-latent state.
    snapshot_freq: store the encoder and normalised decoder every that many steps (for animations).
    """
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be positive, got steps={steps}, batch_size={batch_size}")
    if resampler is not None and not callable(resampler):
        raise TypeError(f"resampler must be a function (sae, frac_active_in_window, resample_scale), got {resampler!r}")
    optimizer = make_adam([p for p in sae.parameters() if p.requires_grad], lr)
    log = SAETrainingLog()
    window: deque[Tensor] = deque(maxlen=resample_window)
    active_sum, n_since_log = None, 0
    bar = tqdm(range(steps), disable=not progress, mininterval=0.5)
    for step in bar:
        for group in optimizer.param_groups:
            group["lr"] = lr * lr_scale(step, steps)
        if snapshot_freq and step % snapshot_freq == 0:
            _snapshot(sae, log, step)
        with torch.no_grad():
            h = sae.generate_batch(batch_size)
        _, loss, acts, _ = sae(h)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

        with torch.no_grad():
            frac_active = (acts.detach() > 0).float().mean(0)  # [inst d_sae]
        window.append(frac_active)
        active_sum = frac_active if active_sum is None else active_sum + frac_active
        n_since_log += 1

        if (
            resampler is not None
            and (step + 1) % resample_freq == 0
            and step + 1 < steps - resample_window // 2
            and len(window) == resample_window
        ):
            frac_window = torch.stack(list(window))
            dead = dead_mask(frac_window)
            with torch.no_grad():
                resampler(sae, frac_window, resample_scale)
                sae.reset_latent_extras(dead)
            reset_optimizer_state(optimizer, sae, dead)
            log.resample_steps.append(step + 1)
            log.n_resampled.append(dead.sum(-1).cpu())
            window.clear()

        if n_since_log == log_freq or step == steps - 1:
            mean_active = (active_sum / n_since_log).cpu()
            log.steps.append(step)
            log.loss.append(loss.item())
            log.frac_active.append(mean_active)
            log.l0.append(mean_active.sum(-1))
            active_sum, n_since_log = None, 0
            bar.set_postfix(loss=f"{log.loss[-1]:.4g}", l0=f"{log.l0[-1].mean():.2f}")
    if snapshot_freq:
        _snapshot(sae, log, steps)
    return log
