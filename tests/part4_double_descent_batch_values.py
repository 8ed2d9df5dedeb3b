"""generate_batch readings of an output with the training set's zero pattern and other values, where the values
themselves say how they were made: one value at every present entry (the presence mask returned as numbers), or the
training set rounded to float16 (every value a float16 number, each within float16's relative precision of the
training set's)."""

from __future__ import annotations

from torch import Tensor


def present_values_reading(got: Tensor, data: Tensor) -> str | None:
    """The hint's cause for `got` [float64, same zero pattern as `data`], or None when the values don't say."""
    present = data != 0
    values, original = got[present], data[present]
    if values.numel() == 0:
        return None
    if bool(((values - values[0]).abs() <= 1e-6 * values[0].abs()).all()) and not bool(
        ((original - original[0]).abs() <= 1e-6 * original[0].abs()).all()
    ):
        return (
            f"every present feature of your output has the same value {float(values[0]):.4g}: that is the training "
            "set's presence pattern ((self.train_data > 0).float(), != 0, .sign(), a mask), not its values"
        )
    rounded = bool((got == got.half().double()).all()) and not bool((data == data.half().double()).all())
    if rounded and bool(((values - original).abs() <= 2.0**-10 * original.abs()).all()):
        return (
            "every value of your output is exactly representable in float16, the training set's are not, and they "
            f"agree to float16 precision (largest difference {float((got - data).abs().max()):.2g}): the values were "
            "rounded to float16 (a .half() round trip, or autocast), losing precision. Keep float32"
        )
    return None
