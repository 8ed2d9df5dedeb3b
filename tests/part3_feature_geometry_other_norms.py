"""dimensions_per_feature: denominators that are another matrix norm of W[inst] than ‖W‖²_F (an operator norm from
matrix_norm's ord=1 / ord=inf, the nuclear or spectral norm left unsquared), a running total over the instances
(cumsum), and d_hidden divided by every squared entry before summing (Σ d / W², infinite at a zero entry, so read
before the finiteness check)."""

from __future__ import annotations

import torch
from torch import Tensor

from tests.checking import fail

FRO = "W.pow(2).sum((1, 2)), or torch.linalg.matrix_norm(W) ** 2 with its default ord='fro'"


def other_norm_readings(W: Tensor) -> list[tuple[str, str, Tensor]]:
    """(code, hint, value) of D* with the denominator replaced by another norm or a running total, on W [inst d f]."""
    W = W.double()
    d = W.shape[1]
    sv = torch.linalg.svdvals(W)
    ops = {
        1: "the largest column sum of |W| (an operator norm)",
        float("inf"): "the largest row sum of |W| (an operator norm)",
    }
    readings = [
        (
            "matrix_norm_ord",
            f"your denominator is matrix_norm(W, ord={'inf' if o == float('inf') else o}) ** 2, {what}: ‖W‖²_F is "
            f"the sum of all the squared entries, {FRO}",
            d / torch.linalg.matrix_norm(W, ord=o) ** 2,
        )
        for o, what in ops.items()
    ]
    readings += [
        (
            "nuclear_not_squared",
            "your denominator is the sum of the singular values (the nuclear norm, ord='nuc'), not squared: ‖W‖²_F is "
            f"the sum of the *squared* singular values, (svdvals(W) ** 2).sum(-1) = {FRO}",
            d / sv.sum(-1),
        ),
        (
            "spectral_not_squared",
            "your denominator is the largest singular value (matrix_norm(W, ord=2)), not squared, and only the "
            f"largest: ‖W‖²_F sums the squares of all the singular values, {FRO}",
            d / sv[..., 0],
        ),
        (
            "cumsum_instances",
            "your denominator is a running total over the instances (cumsum(0)): instance k divides by ‖W‖²_F of "
            "instances 0..k together. Each instance uses its own W[inst] only: W.pow(2).sum((1, 2))",
            d / W.pow(2).sum((1, 2)).cumsum(0),
        ),
    ]
    return readings


def entrywise_ratio_failure(out: object, W: Tensor, what: str) -> None:
    """d_hidden / W² summed over the entries (infinite where W has a zero entry): named before the NaN/inf check."""
    if not isinstance(out, Tensor) or tuple(out.shape) != (W.shape[0],) or not out.is_floating_point():
        return
    if out.device.type == "meta":
        return
    got = out.detach().double().cpu()
    Wd = W.detach().double().cpu()
    for name, value in (
        ("summed", (Wd.shape[1] / Wd.pow(2)).sum((1, 2))),
        ("averaged", (Wd.shape[1] / Wd.pow(2)).mean((1, 2))),
    ):
        if bool(torch.isinf(value).any()) and bool(torch.allclose(got, value, rtol=1e-4, atol=1e-5, equal_nan=True)):
            fail(
                f"{what} is {[round(v, 4) for v in got.tolist()]}: infinite for the instances whose W has a zero entry",
                f"d_hidden was divided by every squared entry and the ratios {name} (Σ d_hidden / W²): a zero entry "
                "gives d_hidden / 0 = inf. D* divides once, by the sum of the squares: "
                "W.shape[1] / W.pow(2).sum((1, 2))",
                code="entrywise_ratio",
            )
