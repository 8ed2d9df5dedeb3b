"""warmup_cosine_lr: read back what a wrong schedule computes when it is still linear or a cosine, and name it.

* step 0 alone wrong (the warm-up is right from step 1): the value it got, e.g. step 1's 1 / warmup_steps from a
  max(step, 1);
* a warm-up that is a straight line (step + shift) / length other than step / warmup_steps, e.g. (step + 0.5) / 20;
* a decay that is still 0.5 (1 + cos(π progress)) with progress = (step - start) / length linear in the step, but
  with another start or length, e.g. (step - warmup_steps) / (steps - warmup_steps + 1) or (step - warmup_steps + 0.5)
  / (steps - warmup_steps). The start and length are solved from arccos of the values and named when they are one of
  the usual expressions; otherwise the other readings (period, floor, shape) speak.
* the whole schedule shifted by a step or two (step - 1: steps counted from 1).
Each reading runs only when no catalogued mistake matches, so the catalogue keeps its codes."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from tests.checking import fail
from tests.part4_double_descent_schedule_pairs import schedule_pair_failure


def _close(a: Tensor, b: Tensor) -> bool:
    return bool(torch.allclose(a, b, rtol=1e-6, atol=1e-7))


def _expression(value: float, names: dict[str, float]) -> str | None:
    """The name whose value is `value` (to 1e-6 relative), or None."""
    for name, v in names.items():
        if abs(value - v) <= 1e-6 * max(1.0, abs(v)):
            return name
    return None


def _offsets(base: str, at: float, halves: bool = False) -> dict[str, float]:
    """`base` and `base ± k` for k = 1, 2, 3 (and ± 0.5, ± 1.5 with halves): the off-by-a-few slips."""
    ks = [0.5 * i for i in range(1, 7)] if halves else [1.0, 2.0, 3.0]
    names = {base: at}
    for k in ks:
        names[f"{base} + {k:g}"] = at + k
        names[f"{base} - {k:g}"] = at - k
    return names


def _step_zero(got: Tensor, right: Tensor, steps: int, warmup: int) -> None:
    if warmup < 2 or not _close(got[1:], right[1:]) or _close(got[:1], right[:1]):
        return
    g0 = float(got[0])
    why = (
        f"it is step 1's value 1 / warmup_steps = {1 / warmup:.4g}: step 0 counted as step 1 (a max(step, 1), a "
        "clamp on the step, or a special case for step 0)"
        if abs(g0 - float(right[1])) <= 1e-9
        else "a special case for the first step?"
    )
    fail(
        f"warmup_cosine_lr(0, {steps}, {warmup}) is {g0:.4g}, expected 0; every other step is right",
        f"only step 0 is wrong: {why}. The warm-up is step / warmup_steps at every step, so it starts at exactly 0",
        code="warmup_step_zero",
    )


def _ramp(got: Tensor, right: Tensor, steps: int, warmup: int) -> None:
    if warmup < 3 or not _close(got[warmup:], right[warmup:]) or _close(got[:warmup], right[:warmup]):
        return
    s = torch.arange(warmup, dtype=torch.float64)
    g = got[:warmup]
    slope = float((g[-1] - g[0]) / (warmup - 1))
    if slope <= 0 or not _close(g, g[0] + slope * s):
        return
    length, shift = 1 / slope, float(g[0]) / slope
    lengths = {**_offsets("warmup_steps", warmup), **_offsets("steps", steps)}
    shifts = _offsets("step", 0.0, halves=True)
    length_name, shift_name = _expression(length, lengths), _expression(shift, shifts)
    if length_name is None or shift_name is None:
        return
    parts = []
    if shift_name != "step":
        parts.append(f"the numerator is {shift_name}, so step 0 gives {float(g[0]):.4g} instead of 0")
    if length_name != "warmup_steps":
        parts.append(f"it divides by {length_name} = {length:g} instead of warmup_steps = {warmup}")
    fail(
        f"warmup_cosine_lr(step, steps={steps}, warmup_steps={warmup}): your warm-up is ({shift_name}) / "
        f"{length_name} = (step {'+' if shift >= 0 else '-'} {abs(shift):g}) / {length:g}; the cosine after it is "
        "right",
        "; ".join(parts) + ". The warm-up is step / warmup_steps: 0 at step 0, reaching 1 at step warmup_steps",
        code="warmup_readback",
    )


def _progress(got: Tensor, right: Tensor, steps: int, warmup: int) -> None:
    n = steps - warmup
    if n < 8 or not _close(got[:warmup], right[:warmup]) or _close(got[warmup:], right[warmup:]):
        return
    g = got[warmup:]
    if not bool(((g >= -1e-9) & (g <= 1 + 1e-9)).all()):
        return
    s = torch.arange(warmup, steps, dtype=torch.float64)
    t = torch.arccos((2 * g - 1).clamp(-1, 1)) / math.pi
    keep = (g > 1e-3) & (g < 1 - 1e-3) & (s < warmup + 0.6 * n)  # well conditioned, before any fold past 1
    if int(keep.sum()) < 4:
        return
    ones = torch.ones_like(s[keep])
    b, c = torch.linalg.lstsq(torch.stack([s[keep], ones], -1), t[keep][:, None]).solution.flatten().tolist()
    if b <= 0 or not _close(g, 0.5 * (1 + torch.cos(math.pi * (b * s + c)))):
        return
    length, start = 1 / b, -c / b
    lengths = {**_offsets("steps - warmup_steps", n), **_offsets("steps", steps)}
    # progress (step - start): start = warmup_steps - k reads as "step - warmup_steps + k"
    starts = {"step - warmup_steps": float(warmup), "step": 0.0}
    for k in (0.5 * i for i in range(1, 7)):
        starts[f"step - warmup_steps + {k:g}"] = warmup - k
        starts[f"step - warmup_steps - {k:g}"] = warmup + k
    length_name, start_name = _expression(length, lengths), _expression(start, starts)
    if length_name is None or start_name is None:
        return
    parts = []
    if start_name != "step - warmup_steps":
        parts.append(f"the progress is measured from step {start:g} ({start_name}), so it is 0 at step {start:g}")
    if length_name != "steps - warmup_steps":
        parts.append(f"it divides by {length_name} = {length:g} instead of steps - warmup_steps = {n}")
    fail(
        f"warmup_cosine_lr(step, steps={steps}, warmup_steps={warmup}): after the warm-up your factor is "
        f"0.5 (1 + cos(π progress)) with progress = ({start_name}) / ({length_name}) = "
        f"(step - {start:g}) / {length:g}; "
        f"expected (step - warmup_steps) / (steps - warmup_steps) = (step - {warmup}) / {n}",
        "; ".join(parts) + ". The progress is 0 at step warmup_steps (factor 1) and grows by 1 / (steps - "
        "warmup_steps) per step; the warm-up is right",
        code="progress_readback",
    )


def schedule_readback_failure(got: Tensor, right: Tensor, steps: int, warmup: int, catalogue: list) -> None:
    """Fail with a read-back of step 0, a linear warm-up or a cosine's progress when one of them explains `got` and
    no catalogued mistake does."""
    got = got.double()
    if not bool(torch.isfinite(got).all()) or _close(got, right) or any(_close(got, v) for _, _, v in catalogue):
        return
    _shifted(got, right)
    _step_zero(got, right, steps, warmup)
    _ramp(got, right, steps, warmup)
    _progress(got, right, steps, warmup)
    schedule_pair_failure(got, right, steps, warmup, catalogue)


def _shifted(got: Tensor, right: Tensor) -> None:
    """The whole schedule a step or two late or early: got[s] = right[s - k] wherever both exist (k = ±1, ±2)."""
    for k in (1, -1, 2, -2):
        a, b = (got[k:], right[:-k]) if k > 0 else (got[:k], right[-k:])
        if a.numel() >= 5 and _close(a, b) and not _close(got, right):
            late, unit = k > 0, "steps" if abs(k) > 1 else "step"
            fail(
                f"your schedule is the right one {abs(k)} {unit} {'late' if late else 'early'}: your value at step s "
                f"is the expected one at step s {'-' if late else '+'} {abs(k)}",
                f"the step is used as {'step - ' if late else 'step + '}{abs(k)}: `step` counts from 0 (the first call "
                "is step 0, where the warm-up gives exactly 0), so use it as it is, with no shift (range(1, steps + 1) "
                "or a counter incremented before use?)",
                code="schedule_shifted",
            )
