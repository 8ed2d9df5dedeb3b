"""Readings that need a second setting (`tests.part4_double_descent`): generate_dataset's presence rate at a p whose
1 / p is not a whole number (at the checker's p = 0.1 a draw of "one in int(1 / p)" has exactly the right rate);
warmup_cosine_lr values cached across calls by step only (two settings called in both orders at fresh steps); a
zero warm-up read as a one-step warm-up (warmup_steps = max(warmup_steps, 1)); and decay slips (`//` in the cosine's
argument, a decay one step late)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

import solutions.part4_double_descent as ref
import tests.part4_double_descent_mistakes as mistakes
from tests.checking import fail

# p = 0.3: 1 / p = 3.33 is not whole. 2,000 x 3 x 24 = 144,000 Bernoulli(p) draws pooled.
RATE_SHAPE, RATE_P = (2_000, 3, 24), 0.3


def second_rate_failure(draw: Callable) -> None:
    """draw(n_examples, n_inst, n_features, p) -> the learner's data set. The pooled presence rate must be p ± a
    Bernstein tolerance (the same failure budget as the checker's other rate tests)."""
    try:
        x = draw(*RATE_SHAPE, RATE_P)
    except Exception:  # the main checks already called it; a failure here is theirs to name
        return
    if not isinstance(x, Tensor) or tuple(x.shape) != RATE_SHAPE:
        return
    rate = (x.detach().cpu().double() > 0).double().mean().item()
    n = math.prod(RATE_SHAPE)
    tol = mistakes.tolerance(n, RATE_P * (1 - RATE_P))
    if abs(rate - RATE_P) <= tol:
        return
    seen = (
        f"generate_dataset{(*RATE_SHAPE, RATE_P)} has {rate:.2%} of its entries present, expected {RATE_P:.0%} ± "
        f"{tol:.2%} (at p = 0.1 the rate was right)"
    )
    k = int(1 / RATE_P)
    for rounded, how in ((k, "int(1 / p)"), (round(1 / RATE_P), "round(1 / p)"), (k + 1, "ceil(1 / p)")):
        if abs(rate - 1 / rounded) <= tol:
            fail(
                f"{seen}: the rate follows 1 / {how} = 1/{rounded}",
                f"presence drawn as 'one in {how}' (randint(0, {how}) == 0 or similar) is true with probability "
                f"1 / {how}, which is p only when 1 / p is a whole number: draw torch.rand(shape) < p",
                code="rate_one_in_k",
            )
    fail(
        seen,
        "the presence rate is right at p = 0.1 but not at p = 0.3: the mask must be true with probability exactly "
        "feature_probability for every p, torch.rand(shape) < feature_probability",
        code="rate_other_p",
    )


# Two settings at steps no other call of the checker uses; the reference differs between them at both steps.
CACHE_A, CACHE_B, CACHE_STEPS = (8_000, 100), (10_000, 300), (4_321, 4_322)


def cached_schedule_failure(factor: Callable) -> None:
    """factor(step, steps, warmup) -> float. In one order (A then B at one step) and in the other (B then A at the
    next) the second call returns the first call's value: the result is remembered by step alone."""
    s1, s2 = CACHE_STEPS
    try:
        a1, b1 = factor(s1, *CACHE_A), factor(s1, *CACHE_B)
        b2, a2 = factor(s2, *CACHE_B), factor(s2, *CACHE_A)
    except Exception:  # the main checks name a failing call
        return
    right = {(s, st): ref.warmup_cosine_lr(s, *st) for s in CACHE_STEPS for st in (CACHE_A, CACHE_B)}
    close = lambda u, v: abs(u - v) <= 1e-6 * max(1.0, abs(v))
    firsts = close(a1, right[s1, CACHE_A]) and close(b2, right[s2, CACHE_B])
    stale = close(b1, a1) and close(a2, b2)
    if firsts and stale and not close(b1, right[s1, CACHE_B]) and not close(a2, right[s2, CACHE_A]):
        fail(
            f"warmup_cosine_lr({s1}, {CACHE_A[0]}, {CACHE_A[1]}) = {a1:.6g} is right, but called next with "
            f"steps={CACHE_B[0]}, warmup_steps={CACHE_B[1]} at the same step it returns the same {b1:.6g} (expected "
            f"{right[s1, CACHE_B]:.6g}); in the other order (at step {s2}) the second setting again gets the first "
            "one's value",
            "the value depends on which setting was called first at that step: a cache (a dict, functools.cache on "
            "a helper) keyed by the step alone returns an earlier schedule's value; compute the factor from "
            "(step, steps, warmup_steps) on every call, or key the cache by all three",
            code="cached_by_step",
        )


def zero_as_one_step_warmup_failure(got: Tensor, steps: int) -> None:
    """got [steps] for warmup_steps = 0 is exactly the schedule with a one-step warm-up."""
    one = torch.tensor([ref.warmup_cosine_lr(s, steps, 1) for s in range(steps)], dtype=torch.float64)
    if torch.allclose(got, one, rtol=1e-6, atol=1e-7):
        fail(
            f"warmup_cosine_lr(step, steps={steps}, warmup_steps=0) equals the schedule with warmup_steps=1 (0 at "
            f"step 0, 1 at step 1, the cosine over the remaining {steps - 1} steps); expected 1 at step 0 and the "
            f"cosine over all {steps} steps",
            "a zero warm-up was turned into a one-step warm-up (warmup_steps = max(warmup_steps, 1) to avoid the "
            "division by 0?): keep warmup_steps as given and only guard the division, e.g. test "
            "`step < warmup_steps` before dividing, so with no warm-up step 0 goes straight to the cosine",
            code="zero_warmup_one_step",
        )
    for w in range(2, steps):
        other = torch.tensor([ref.warmup_cosine_lr(s, steps, w) for s in range(steps)], dtype=torch.float64)
        if torch.allclose(got, other, rtol=1e-6, atol=1e-7):
            fail(
                f"warmup_cosine_lr(step, steps={steps}, warmup_steps=0) equals the schedule with warmup_steps={w} "
                f"(a {w}-step warm-up from 0, then the cosine); expected 1 at step 0 and the cosine over all {steps} "
                "steps",
                f"a zero warm-up was replaced by {w}: a default such as `warmup_steps or {w}` (0 is falsy) or "
                f"`if not warmup_steps: warmup_steps = {w}` treats 0 as missing; keep 0 as given (test `is None` for a "
                "missing value)",
                code="zero_warmup_replaced",
            )


def _half_cosine(x: float) -> float:
    return 0.5 * (1 + math.cos(math.pi * x))


def decay_slips(right: Tensor, steps: int, warmup: int, catalogue: list) -> list:
    """Decay mistakes as (code, hint, values [steps]), kept only where they differ from `right` and the catalogue:
    `//` in the cosine's argument (a staircase: floor(π progress) is 0, 1, 2 or 3), and the decay started one step
    late (1 returned at step == warmup_steps, then the cosine of (step - warmup_steps - 1) / ...)."""
    rest = steps - warmup
    late = "the decay starts one step late: "
    forms = [
        (
            "cosine_floor_division",
            "your decay is a staircase, 0.5 (1 + cos(floor(π progress))): floor(π progress) only takes the values 0, "
            "1, 2, 3, which is what `//` (floor division) in the cosine's argument gives (math.pi * (step - warmup) "
            "// (steps - warmup)). Use true division /: cos(π (step - warmup_steps) / (steps - warmup_steps))",
            lambda s: _half_cosine(math.floor(math.pi * (s - warmup) / rest) / math.pi),
        ),
        *[
            (
                "decay_one_step_late",
                late + f"1 at step == warmup_steps and then the cosine of {form}, so the whole decay lags "
                "a step behind (a special case for the peak step, or a progress shifted by one): the "
                "peak at step == warmup_steps is already the cosine's progress 0, 0.5 (1 + cos(π (step - "
                "warmup_steps) / (steps - warmup_steps))); no separate case is needed",
                lambda s, d=d: 1.0 if s == warmup else _half_cosine((s - warmup - 1) / (rest - d)),
            )
            for d, form in (
                (1, "(step - warmup_steps - 1) / (steps - warmup_steps - 1)"),
                (0, "(step - warmup_steps - 1) / (steps - warmup_steps)"),
            )
            if rest - d > 0
        ],
    ]
    out = []
    for code, hint, f in forms:
        value = torch.tensor([s / warmup if s < warmup else f(s) for s in range(steps)], dtype=torch.float64)
        others = [right, *(v for _, _, v in catalogue), *(v for _, _, v in out)]
        if not any(torch.allclose(value, v, rtol=1e-6, atol=1e-7) for v in others):
            out.append((code, hint, value))
    return out
