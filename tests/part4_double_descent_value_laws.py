"""generate_dataset: value distributions a present feature may wrongly follow, beyond the catalogue's
(`tests.part4_double_descent_mistakes.value_candidates`): a power of a uniform, √U, U^(1/3) or U²
(torch.rand(...).sqrt(), ** 2). The check reads the present values relative to the largest one in their example;
for U^a these are again U^a (given the largest, the others are uniform below it), with mean 1 / (a + 1): 2/3 for
√U, 3/4 for the cube root, 1/3 for U², far from U[0, 1]'s 1/2."""

from __future__ import annotations

import torch
from torch import Tensor

import tests.part4_double_descent_mistakes as mistakes


def value_candidates(shape: tuple[int, ...], p: float) -> list[tuple[str, str, Tensor]]:
    """The catalogue's (code, hint, ratio sample) value laws, then the powers of a uniform, drawn with a fixed seed."""
    g = torch.Generator().manual_seed(1)
    mask = torch.rand(shape, generator=g, dtype=torch.float64) < p
    u = torch.rand(shape, generator=g, dtype=torch.float64)
    powers = [
        (
            "power_values",
            f"the values look like U^{name} draws ({code}): each present value is a plain torch.rand draw, U[0, 1], "
            "with no power or root applied before normalising",
            mistakes.ratio_sample(torch.where(mask, u**power, 0.0)),
        )
        for name, code, power in (
            ("(1/2)", "torch.rand(...).sqrt()", 0.5),
            ("(1/3)", "torch.rand(...) ** (1 / 3)", 1 / 3),
            ("2", "torch.rand(...) ** 2", 2.0),
        )
    ]
    return mistakes.value_candidates(shape, p) + powers
