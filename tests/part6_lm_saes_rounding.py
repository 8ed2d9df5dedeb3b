"""Part 6 reconstruction_losses: a value that looks rounded, and a recovered fraction that is exactly 0 or 1.

A recovered fraction of exactly 1 (or 0) while the learner's own three losses are not rounded is what a ratio with the
same difference on both sides gives ((zero - spliced) / (zero - spliced): a variable reused), or a numerator that is a
difference of a loss with itself; it is named as that before the rounding reading (which would say "rounded to 0
decimals"), with rounding kept as the other possible cause.
"""

from __future__ import annotations

from tests.checking import fail


def _decimals(x: float) -> int | None:
    """The fewest decimals (0 to 3) x has, or None when it has more."""
    return next((d for d in (0, 1, 2, 3) if abs(x - round(x, d)) < 1e-9), None)


def rounding_diagnosis(got: float, expected: float, what: str, losses: dict[str, float] | None = None) -> None:
    """A value with at most 3 decimals that is within half a unit of its last decimal from the expected one. The
    expected value is a float32 mean: it has 3 decimals or fewer (|x - round(x, d)| < 1e-9) with probability
    ~2e-9 / 1e-3 = 2e-6, and this fixed input is checked not to (the reference passes). `losses`: the learner's
    returned values, to tell a degenerate recovered fraction (exactly 0 or 1) from a rounded one."""
    own = [losses[k] for k in ("clean", "spliced", "zero_ablated")] if losses and what == "out['recovered']" else []
    if own and got in (0.0, 1.0) and got != expected and all(_decimals(v) is None for v in own):
        same = "the same difference on both sides ((zero - spliced) / (zero - spliced)?)"
        fail(
            f"{what} = {got:g} exactly, expected {expected:.6g} (your three losses are not rounded)",
            f"exactly {got:g} is what a ratio gives with "
            + (same if got == 1.0 else "a numerator that is a loss minus itself ((spliced - spliced) / ...?)")
            + ": a variable reused where another loss belongs; recovered = (zero - spliced) / (zero - clean). "
            "(If you rounded it, return the full-precision value instead.)",
            code="recovered_degenerate",
        )
    for d in (0, 1, 2, 3):
        if abs(got - round(got, d)) < 1e-9 and 0 < abs(got - expected) <= 0.5 * 10**-d + 1e-9:
            fail(
                f"{what} = {got:g} differs from the expected {expected:.6g} by {abs(got - expected):.2g}, no more "
                f"than half a unit of decimal {d}, and has no more than {d} decimals",
                f"it looks rounded to {d} decimals (round(), f'{{x:.{d}f}}', .item() of a rounded tensor?): "
                "return the full-precision value and round only when printing",
                code="rounded",
            )
