"""Present values whose moments and quarters fit U[low, high] but that never enter one stretch of [low, high]: a
draw from a narrower range (an offset such as 0.01 + 0.99 * rand, a floor with no pile-up) or a hole in the middle.

Tolerance: among n independent U[low, high] draws, the sorted values and the two bounds cut [low, high] into n + 1
spacings, each of which exceeds a share g of the width with probability (1 - g)^n ≤ e^(-n g); by the union bound some
spacing does with probability ≤ (n + 1) e^(-n g). With g = (ln(n + 1) + ln(1 / δ)) / n that is ≤ δ = the checks'
FAILURE_PROBABILITY, so a correct draw essentially never fails. Float32 rand steps (2^-24) are far below g.

`low_precision_failure` runs first: values that are all exact float16 (or bfloat16) numbers were drawn or stored in
half precision, whose grid leaves such stretches empty. A float32 U[0, 1] draw is a float16 number with probability
about 2^-13 (bfloat16: 2^-16), so 1000 of them all are essentially never."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from tests.checking import FAILURE_PROBABILITY, fail


def low_precision_failure(values: Tensor, message: str) -> None:
    """Fail when 1000 or more present values are all exact float16 or bfloat16 numbers (see the module), with more
    than 64 distinct ones (fewer, on a grid such as k / 4, is a quantised draw, named by the grid reading)."""
    v = values.detach().float().flatten().cpu()
    if v.numel() < 1000 or int(v.unique().numel()) <= 64:
        return
    for dtype, name in ((torch.bfloat16, "bfloat16"), (torch.float16, "float16")):
        if bool((v.to(dtype).float() == v).all()):
            k = int(v.unique().numel())
            fail(
                f"{message}; every one of the {v.numel()} present values is exactly a {name} number ({k} distinct "
                "values)",
                f"the values were drawn or stored in {name} (torch.rand(..., dtype=torch.{name}), .half(), "
                f".to(torch.{name}) or autocast) and cast back: half precision leaves only a coarse grid of values; "
                "draw them in float32 (torch.rand(...) as it is)",
                code="values_low_precision",
            )


def support_gap_failure(values: Tensor, message: str, low: float, high: float) -> None:
    """Fail when no present value lies in a stretch of [low, high] wider than chance allows (see the module)."""
    low_precision_failure(values, message)
    v = values.detach().double().flatten().cpu()
    n, width = v.numel(), high - low
    if n < 1000:
        return
    g = (math.log(n + 1) + math.log(1 / FAILURE_PROBABILITY)) / n
    edges = torch.cat([torch.tensor([low], dtype=v.dtype), v.sort().values, torch.tensor([high], dtype=v.dtype)])
    gaps = edges.diff()
    i = int(gaps.argmax())
    if float(gaps[i]) <= g * width:
        return
    a, b = float(edges[i]), float(edges[i + 1])
    law = f"U[{low:g}, {high:g}]"
    seen = f"{message}; yet none of the {n} present values lies in ({a:.4g}, {b:.4g})"
    chance = f"({n} {law} draws leave no empty stretch wider than {g * width:.2g} except with probability 1e-7)"
    if i == 0:
        fail(
            f"{seen}: the smallest is {b:.4g} {chance}",
            f"the values start at {b:.3g}, not at {low:g}: a draw from a narrower range such as {b:.3g} + "
            f"{high - b:.3g} * rand (an offset meant to keep present values away from 0); present values are {law}, "
            "torch.rand as it is",
            code="values_support_gap",
        )
    if i == gaps.numel() - 1:
        fail(
            f"{seen}: the largest is {a:.4g} {chance}",
            f"the values stop at {a:.3g}, short of {high:g}: a factor or offset on the draw narrows it; present "
            f"values are {law}, torch.rand as it is",
            code="values_support_gap",
        )
    fail(
        f"{seen} {chance}",
        f"values in ({a:.3g}, {b:.3g}) are never drawn (a hole in the law, e.g. values moved away from a point); "
        f"present values are {law}, every value equally likely",
        code="values_support_gap",
    )
