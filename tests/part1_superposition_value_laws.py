"""Readings of out-of-range present values that name the law they follow, shared by every part 1 generator's check.

* Signed values: named by their observed endpoints, U[-0.5, 0.5] as `rand - 0.5`, U[-1, 1] as `2 * rand - 1`, any
  other signed range described as observed, with no formula asserted.
* Non-negative values with a long right tail: an exponential law (`exponential_()`, `-log(rand)`), named with its
  fitted mean.

Descriptive only: both run after the batch has already been rejected (values outside the allowed range), so a correct
draw never reaches them. A law is named only when the sample fits it: the Kolmogorov-Smirnov distance to the law's CDF
is below the DKW bound eps = sqrt(ln(2/δ) / 2n) (P(sup|F_n - F| > eps) ≤ δ) plus 0.01 of slack (for the snapped
endpoints, or the fitted mean's error, which moves an exponential CDF by at most |Δm / m| / e ≈ 1/sqrt(n) / e).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from tests.checking import FAILURE_PROBABILITY, fail
from tests.part1_superposition_support_gaps import low_precision_failure


def _dkw(n: int) -> float:
    """The KS distance a sample of n draws of a law stays below with probability ≥ 1 - FAILURE_PROBABILITY, + 0.01."""
    return math.sqrt(math.log(2 / FAILURE_PROBABILITY) / (2 * n)) + 0.01


def signed_values_hint(values: Tensor, law: str) -> str:
    """The hint for present values of both signs where `law` (non-negative) was asked, from their observed range.

    The endpoints are named only on 1000 values or more: the minimum of n draws of U[a, b] lies above a + 0.02 (b - a)
    with probability (1 - 0.02)^n ≤ e^-20 (the maximum likewise), and the KS test must accept the uniform law too."""
    v = values.double().flatten().sort().values
    n, lo, hi = v.numel(), float(v[0]), float(v[-1])
    if n >= 1000:
        ecdf = torch.arange(1, n + 1, dtype=torch.float64) / n
        for a, b, formula in ((-0.5, 0.5, "rand - 0.5"), (-1.0, 1.0, "2 * rand - 1")):
            ends = abs(lo - a) < 0.02 * (b - a) and abs(hi - b) < 0.02 * (b - a)
            if ends and float((ecdf - ((v - a) / (b - a)).clamp(0, 1)).abs().max()) < _dkw(n):
                return f"values look like U[{a:g}, {b:g}] ({formula}): this exercise draws {law} (torch.rand)"
    negative = float((v < 0).double().mean())
    return (
        f"present values are signed, from {lo:.3g} to {hi:.3g} ({negative:.0%} of them negative): a shift or a signed "
        f"draw (randn, rand - c, a * rand - b) where {law} was meant; draw them with torch.rand, as they are"
    )


def exponential_law(v: Tensor, law: str) -> tuple[str, str] | None:
    """(code, hint) when sorted non-negative present values `v` (at least 100) fit an exponential law; else None."""
    n = v.numel()
    if n < 100 or float(v[0]) < 0:
        return None
    mean = float(v.mean())
    ecdf = torch.arange(1, n + 1, dtype=torch.float64) / n
    if mean <= 0 or float((ecdf - (1 - torch.exp(-v / mean))).abs().max()) >= _dkw(n):
        return None
    above = float((v > mean).double().mean())
    rate = "Exp(1), torch.empty(...).exponential_() or -torch.log(torch.rand(...))"
    which = (
        rate if abs(mean - 1) < 0.05 else f"an exponential law of mean {mean:.3g} (exponential_(lambd={1 / mean:.3g}))"
    )
    return "values_exponential", (
        f"present values look exponential (mean {mean:.3g}, max {float(v[-1]):.3g}, {above:.0%} above the mean where "
        f"an exponential law has e^-1 ≈ 37%): {which} where torch.rand was meant; draw them from {law}"
    )


def normal_law(v: Tensor, law: str) -> tuple[str, str] | None:
    """(code, hint) when sorted present values `v` (at least 100) standardised by their own mean and spread fit N(0, 1)
    within the DKW bound (a normal draw, shifted and scaled); else None."""
    n = v.numel()
    mean, sd = float(v.mean()), float(v.std())
    if n < 100 or sd <= 0:
        return None
    ecdf = torch.arange(1, n + 1, dtype=torch.float64) / n
    if float((ecdf - 0.5 * (1 + torch.erf((v - mean) / (sd * math.sqrt(2))))).abs().max()) >= _dkw(n):
        return None
    standard = abs(mean) < 0.05 and abs(sd - 1) < 0.05
    draw = "torch.randn(...)" if standard else f"{mean:.3g} + {sd:.3g} · torch.randn(...)"
    return "values_normal", (
        f"present values look normal (mean {mean:.3g}, spread {sd:.3g}, from {float(v[0]):.3g} to {float(v[-1]):.3g}): "
        f"a normal draw, {draw}, where torch.rand was meant; draw them from {law}"
    )


def product_law(values: Tensor, low: float, high: float) -> str | None:
    """A product of two draws, named when the values fit its law; None otherwise.

    On a range symmetric about 0 ([-a, a]) or starting at 0 ([0, a]), |v| / a of a product u1 · u2 of two independent
    U[0, 1] draws (e.g. part 1's rand times a signed 2 * rand - 1) has CDF F(t) = t - t ln t. The KS distance to it
    is compared with the DKW bound, so such a sample is named with probability ≥ 1 - FAILURE_PROBABILITY."""
    if not (low == 0 or abs(low + high) < 1e-9) or high <= 0 or values.numel() < 100:
        return None
    t = (values.double().abs() / high).clamp(1e-300, 1).sort().values
    n = t.numel()
    ecdf = torch.arange(1, n + 1, dtype=torch.float64) / n
    if float((ecdf - (t - t * t.log())).abs().max()) >= _dkw(n):
        return None
    signed = "rand * (2 * rand - 1)" if low < 0 else "rand * rand"
    return (
        f"|values| follow the law of a product of two uniform draws (e.g. {signed}: one draw multiplying another, "
        "such as a batch drawn once and then multiplied by a fresh draw), which piles them towards 0; "
    )


def per_cell_law_failure(
    batch: Tensor, present: Tensor, p: Tensor | None, message: str, low: float, high: float
) -> None:
    """(After a cell's mean value was rejected) name a per-cell uniform law whose interval moves with p: every present
    value of cell (i, j) mapped by its candidate interval [a_ij, b_ij] to (v - a) / (b - a), pooled, is compared
    with U[0, 1] by the Kolmogorov-Smirnov distance against the DKW bound, so the right law is named with probability
    >= 1 - FAILURE_PROBABILITY and a law that does not fit is not named."""
    if p is None or present.shape != batch.shape or present.ndim != 3 or int(present.sum()) < 1000:
        return
    width, q = high - low, p.double().cpu()
    candidates = (
        (
            low + q * width,
            torch.full_like(q, high),
            "uniform on [p, 1] in each cell: a draw shifted by p, such as rand * (1 - p) + p",
            "values_shifted_by_p",
        ),
        (
            torch.full_like(q, low),
            low + (1 - q) * width,
            "uniform on [0, 1 - p] in each cell: a draw scaled by 1 - p",
            "values_scaled_by_1_minus_p",
        ),
    )
    v, cells = batch.double().cpu(), present.cpu()
    for a, b, law, code in candidates:
        u = ((v - a) / (b - a).clamp_min(1e-12))[cells].sort().values
        n = u.numel()
        ecdf = torch.arange(1, n + 1, dtype=torch.float64) / n
        if float((ecdf - u.clamp(0, 1)).abs().max()) < _dkw(n):
            fail(
                message + "; each cell's present values fit a uniform law whose interval moves with p",
                f"the values are {law}: draw them from U[{low:g}, {high:g}] (torch.rand), the same law in every cell, "
                "independent of p",
                code=code,
            )


def grid_values_failure(values: Tensor, what: str, law: str) -> None:
    """Present values on a grid (a quantised draw: rounding, a cast, randint(0, m) / m) fail, naming the grid's step.

    A float32 torch.rand takes 2^24 values: n <= 4e6 draws have about n - n^2 / 2^25 >= 0.88 n distinct ones (the
    count concentrates: its variance is below its mean deficit), never n / 4, and their gaps are multiples of 2^-24,
    below the 1e-4 step asked here. Values shared over the batch are few too, but off any grid (checked later)."""
    n, distinct = values.numel(), values.double().unique()
    k = distinct.numel()
    if n <= 100 or k > n / 4 or k < 2:
        return
    low_precision_failure(values, f"{what}: the present values take only {k} distinct values")
    span = float(distinct[-1] - distinct[0])
    step = span / max(
        round(span / float(distinct.diff().min())), 1
    )  # from the span: min(diff) carries float32 rounding
    offset = (distinct - distinct[0]) / step
    percent = bool(((distinct * 100 - (distinct * 100).round()).abs() < 1e-4).all()) and k <= 16
    if not (percent or (k >= 4 and step >= 1e-4 and bool(((offset - offset.round()).abs() < 1e-4).all()))):
        return
    step = 0.01 if percent and step < 0.01 else step
    zero = abs(float(distinct[0]) / step - round(float(distinct[0]) / step)) < 1e-4
    fail(
        f"{what}: the present values take only {k} distinct values "
        f"({', '.join(f'{float(v):.3g}' for v in distinct[:8])}{', ...' if k > 8 else ''}), "
        f"on a grid of step {step:.3g}",
        "the values are quantised: rounded (.round()), cast to int, drawn with randint(0, m) / m, or a mask or sign "
        "used as the value"
        + (
            ": on that grid a draw of exactly 0 also makes a present feature look absent (lowering its rate)"
            if zero
            else ""
        )
        + f"; draw each present value from {law} (torch.rand, kept as float)",
        code="discrete_values",
    )


def ends_shape(values: Tensor, low: float, high: float) -> str:
    """Values crowd both ends of [low, high]: what is observed, then the power law of the distance from the centre
    read back. m = |v - centre| / half-width is U[0, 1] for a uniform draw; a magnitude rand ** (1 / a) has CDF
    P(m <= t) = t^a (√rand: t²). The exponent is the MLE a = -1 / mean(log m); the law is named only when the
    empirical CDF is within 3 / sqrt(n) + 0.005 of t^a everywhere (Kolmogorov-Smirnov: a correct power law exceeds
    3 / sqrt(n) with probability 2e^-18)."""
    centre, half = (low + high) / 2, (high - low) / 2
    m = ((values.double() - centre).abs() / half).clamp(1e-12, 1).sort().values
    outer = float((m > 0.5).double().mean())
    seen = (
        f"values crowd both ends of the range ({outer:.0%} in the outer quarters, where U[{low:g}, {high:g}] has 50%)"
    )
    n = m.numel()
    if n >= 100:
        a = float(-1 / m.log().mean())
        ecdf = torch.arange(1, n + 1, dtype=torch.float64) / n
        if float((ecdf - m**a).abs().max()) < 3 / math.sqrt(n) + 0.005:
            dist = f"|v - {centre:g}|" if centre else "|v|"
            root = "√rand (rand ** 0.5)" if abs(a - 2) < 0.05 else f"rand ** {1 / a:.2g}"
            return (
                f"{seen}: the distance from the centre, {dist}, has P(≤ t) = t^{a:.2f} "
                f"(read back on every value), the law of {root}: a magnitude drawn as {root}"
                + (" with a random sign" if low < 0 < high else "")
                + " where a plain rand belongs; "
            )
    return f"{seen}: e.g. a tanh of a wide draw, a root of rand for the magnitude, or a sign of a draw; "


def value_atom_failure(values: Tensor, message: str, low: float, high: float) -> None:
    """Present values (whose moments and quarters fit U[low, high]) with one value repeated far beyond chance: an atom.

    A float32 U[low, high] draw takes one of G >= 2^24 grid values (2^-24 steps), so among n draws some value is
    repeated k times with probability <= G · C(n, k) / G^k <= n^k / (k! G^(k-1)); at k = 30 and n <= 10^6 this is
    below 10^-200. A coarse grid (float16, rounding) repeats every value about alike, so the atom must also be 10
    times the next most frequent value (+ 1). Read back: where the atom sits (the minimum, the maximum or inside)
    tells a clamp from a substitution."""
    v = values.detach().double().flatten().cpu()
    if v.numel() < 100:
        return
    uniq, counts = torch.unique(v, return_counts=True)
    top = counts.topk(min(3, counts.numel()))
    c1 = int(top.values[0])
    c2 = int(top.values[1]) if counts.numel() > 1 else 0
    c3 = int(top.values[2]) if counts.numel() > 2 else 0
    ends = sorted(float(uniq[i]) for i in top.indices[:2].tolist())
    if c2 >= 30 and c2 > 10 * (c3 + 1) and ends == [float(v.min()), float(v.max())] and low < ends[0] < ends[1] < high:
        # Two atoms, at the smallest and the largest value: both ends clamped (a clamp(a, b) inside [low, high]).
        fail(
            message + f"; {int((v == ends[0]).sum())} of them are exactly {ends[0]:.4g} (none below) and "
            f"{int((v == ends[1]).sum())} exactly {ends[1]:.4g} (none above)",
            f"the values beyond {ends[0]:.3g} and {ends[1]:.3g} are piled onto them: a clamp({ends[0]:.3g}, "
            f"{ends[1]:.3g}) (or a min and a max) after the draw; present values are U[{low:g}, {high:g}] with no "
            "clamp",
            code="values_clamped",
        )
    if c1 < 30 or c1 <= 10 * (c2 + 1):
        return
    atom, share = float(uniq[top.indices[0]]), c1 / v.numel()
    below, above = int((v < atom).sum()), int((v > atom).sum())
    seen = f"; {c1} of them ({share:.1%}) are exactly {atom:.4g}"
    law = f"U[{low:g}, {high:g}]"
    if below == 0 and atom > low:
        fail(
            message + seen + ", and none is below it",
            f"the values below {atom:.3g} are piled onto {atom:.3g}: a clamp(min={atom:.3g}) (or a max with it) "
            f"after the draw; present values are {law} with no clamp",
            code="values_clamped_min",
        )
    if above == 0 and atom < high:
        fail(
            message + seen + ", and none is above it",
            f"the values above {atom:.3g} are piled onto {atom:.3g}: a clamp(max={atom:.3g}) (or a min with it) "
            f"after the draw; present values are {law} with no clamp",
            code="values_clamped_max",
        )
    fail(
        message + seen,
        f"some draws are replaced by the constant {atom:.3g} (a where/fill/masked_fill with a constant, or a "
        f"rounding to it); every present value is its own {law} draw",
        code="values_atom",
    )
