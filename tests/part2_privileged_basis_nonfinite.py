"""Part 2's computation batch with NaN entries: say where they are before any guess about why."""

from __future__ import annotations

from torch import Tensor

from tests.checking import fail


def nan_signs_failure(batch: object, what: str) -> None:
    """NaN entries and no negative value left: every value that should be negative became NaN (a sign drawn as a
    fractional power of -1, or a root/log of a negative number). Other NaN patterns are only located."""
    if not isinstance(batch, Tensor) or not batch.is_floating_point() or batch.device.type == "meta":
        return  # a meta tensor holds no values: expect_tensor names it
    values = batch.detach()
    nan = values.isnan()
    if not bool(nan.any()):
        return
    finite = values[~nan]
    n_nan, n_neg, n_pos = int(nan.sum()), int((finite < 0).sum()), int((finite > 0).sum())
    seen = (
        f"{what} contains {n_nan} NaN values ({n_nan / values.numel():.1%} of the entries); of the others {n_pos} "
        f"are positive and {n_neg} negative"
    )
    if n_neg == 0:
        fail(
            seen + ": no finite value is negative, so the NaNs take the place of the negative values (at least)",
            "the values that should be negative came out NaN (here with no negative value left), e.g. a sign drawn "
            "as a fractional power of a negative "
            "number ((-1) ** u with a float u is NaN unless u is a whole number), or a sqrt/log of a negative value. "
            "Draw the sign as torch.where(coin, 1.0, -1.0), or the values directly as 2 * rand - 1",
            code="nan_negative",
        )
    fail(
        seen,
        "look for an operation that is undefined on some inputs: 0 / 0, a log or sqrt of a negative number, "
        "a fractional power of a negative number",
        code="not_finite",
    )
