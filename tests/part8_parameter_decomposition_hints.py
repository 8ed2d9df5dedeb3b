"""Part 8's newer hint texts (the catalogue's longer ones), and the region descriptions: how a function of x that
varies within a region (x < 0, [0, 1], x > 1) depends on x, for the hard sigmoids' region-by-region hints (a
straight line named by its slope and intercept, else the range of values seen)."""

from __future__ import annotations

from torch import Tensor


def varying(v: Tensor, xs: Tensor) -> str:
    """`v` named as a straight line in `xs` (c·x, x / k, c·x + b) when one fits to 1e-4, else its range."""
    spread = f"a value that changes with x ({float(v.min()):.3g} to {float(v.max()):.3g})"
    x, y = xs.double().flatten(), v.double().flatten()
    if (step := two_pieces(x, y)) is not None:
        return step
    if x.numel() < 3 or float(x.max() - x.min()) < 1e-6:
        return spread
    xc = x - x.mean()
    slope = float((xc * (y - y.mean())).sum() / (xc * xc).sum())
    intercept = float(y.mean()) - slope * float(x.mean())
    if float((y - (slope * x + intercept)).abs().max()) > 1e-4 * max(1.0, float(y.abs().max())):
        return spread
    k = 1 / slope if abs(slope) > 1e-8 else 0.0
    line = f"x / {round(k)}" if abs(slope) < 1 and round(k) != 0 and abs(k - round(k)) < 1e-3 else f"{slope:.4g}·x"
    line += f" {'+' if intercept > 0 else '-'} {abs(intercept):.4g}" if abs(intercept) > 1e-4 else ""
    lo, hi = float(v.min()), float(v.max())
    return f"a value that changes with x as {line} (a straight line of slope {slope:.4g}, {lo:.3g} to {hi:.3g})"


INSTANCE_MEAN = (
    "every instance has its own MLPs: your importances match one MLP shared by all instances, with parameters "
    "averaged over the inst axis (w_in.mean(0), ...); keep the inst axis of w_in, b_in, w_out, b_out"
)

SUM_OVER_C = (
    "each subcomponent c gets its own z_c: the output layer sums over the hidden units only, not over C too "
    "(an einsum output '... -> batch inst' drops C and sums over it; keep C in the output: 'batch inst C')"
)

MASK_BATCH_SUM = (
    "every example has its own masks, so there is no single masked matrix for the batch: your output matches the "
    "masks summed over the batch (an einsum over mask, U, V with output 'inst d_out d_in' sums over batch); "
    "mask V a per example: U (mask ⊙ V a)"
)


def two_pieces(x: Tensor, y: Tensor) -> str | None:
    """`y` named as two constants split at one x (a region edge in the wrong place, e.g. a |x| <= 1 mask), when it
    takes exactly two values (to 1e-4) and every x of one lies below every x of the other; else None."""
    lo, hi = float(y.min()), float(y.max())
    low = (y - lo).abs() < 1e-4
    if hi - lo < 1e-4 or not (low | ((y - hi).abs() < 1e-4)).all():
        return None
    left, right = (lo, hi) if float(x[low].max()) < float(x[~low].min()) else (hi, lo)
    below = low if left == lo else ~low
    if float(x[below].max()) >= float(x[~below].min()):
        return None
    edge = (float(x[below].max()) + float(x[~below].min())) / 2
    return (
        f"{left:.3g} for x below about {edge:.3g} and {right:.3g} above it (two constants, but the break is at "
        f"x ≈ {edge:.3g}, not at a region edge 0 or 1: a wrong threshold or comparison, e.g. a |x| <= 1 mask)"
    )


# One sigmoid's leak missing (its gradient is 0 beyond the clamp, the other output's is right): a plain clamp in its
# place and z clipped before it behave the same on every input, so both are said.
LOWER_NO_LEAK = (
    "the first output passes no gradient where z < 0 (its leak below 0 is missing; the second output's is right): it "
    "is LowerLeakyHardSigmoid.apply(z, self.alpha) of z itself. A plain clamp there, or z clipped at 0 before it "
    "(relu(z), z.clamp(min=0)), both give this; the two can't be told apart"
)
UPPER_NO_LEAK = (
    "the second output passes no gradient where z > 1 (its leak above 1 is missing; the first output's is right): it "
    "is UpperLeakyHardSigmoid.apply(z, self.alpha) of z itself. A plain clamp there, or z clipped at 1 before it "
    "(z.clamp(max=1)), both give this; the two can't be told apart"
)
