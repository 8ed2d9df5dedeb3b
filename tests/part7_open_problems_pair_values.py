"""Read-back for compute_target's pair targets that returned non-0/1 values: which value combination of the pair
(a·b, min, max, a + b, |a| + |b|, clamped to [0, 1] or not) reproduces the output; named only when one does."""

from __future__ import annotations

from torch import Tensor


def pair_value_readback(got: Tensor, a: Tensor, b: Tensor) -> str:
    """'; your output equals X of the pair's values' for the first X that reproduces `got`, else ''."""
    combos = {
        "a·b": a * b,
        "min(a, b)": a.minimum(b),
        "max(a, b)": a.maximum(b),
        "a + b": a + b,
        "|a| + |b|": a.abs() + b.abs(),
        "|a·b|": (a * b).abs(),
    }
    for text, value in combos.items():
        for shown, v in ((text, value), (f"({text}).clamp(0, 1)", value.clamp(0, 1))):
            if v.shape == got.shape and bool((v - got).abs().max() <= 1e-6):
                return f"; your output equals {shown} of the pair's values on every pair (read back)"
    return ""
