"""Part 2's signed feature batch: every present value the same constant (checked before the sign tests, which would
only say "no present value is negative").

A U[-1, 1] draw repeats a float32 value by chance only a handful of times (2^24 grid values per unit), so 100 or more
present values that are all exactly equal are a constant, never a correct batch. A constant of 1 is what a value
tensor overwritten by its own 0/1 mask leaves (values.bernoulli_(p), an in-place draw on the values), or the mask
returned as the batch; any other constant is a fill or a fixed value where a draw belongs."""

from __future__ import annotations

from torch import Tensor

from tests.checking import fail


def constant_present_failure(batch: Tensor, what: str) -> None:
    """Fail when every present (nonzero) entry of `batch` [batch inst feats] is one and the same value."""
    values = batch[batch != 0]
    if values.numel() < 100 or not bool((values == values[0]).all()):
        return
    c = float(values[0])
    message = f"{what}: all {values.numel()} present values are exactly {c:.4g}"
    if c == 1.0:
        fail(
            message,
            "the values were overwritten by the presence mask: an in-place draw on the value tensor "
            "(values.bernoulli_(p) returns the same tensor, now 0/1), or the 0/1 mask returned as the batch. Draw the "
            "mask into its own tensor (torch.rand(...) < p, or torch.bernoulli(p) without the underscore) and keep "
            "the U[-1, 1] values (2 * torch.rand(...) - 1) where it is 1",
            code="values_overwritten_by_mask",
        )
    fail(
        message,
        f"no value is drawn: present entries are filled with the constant {c:.4g}; each present value is its own "
        "U[-1, 1] draw (2 * torch.rand(...) - 1)",
        code="values_constant",
    )
