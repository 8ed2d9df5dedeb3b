"""Part 4 diagnoses kept out of the full checker and catalogue modules: a warm-up of another start value or shape (the
cosine part right), NaN rows from normalising all-zero training examples again, and the squared overlaps of the
dimensionality written as a matrix product instead of an elementwise square."""

from __future__ import annotations

import math

import torch
from torch import Tensor

import tests.part4_double_descent_mistakes as mistakes
import tests.part4_double_descent_probes as probes
from tests.checking import fail
from tests.part3_feature_geometry_overlaps import _guards, overlap_square_candidates, whole_norm_candidates
from tests.part4_double_descent_gram_slips import gram_slip_candidates
from tests.part4_double_descent_norm_slips import mean_norm_candidates
from tests.part4_double_descent_overlap_signs import signed_overlap_candidates
from tests.part4_double_descent_readbacks import precedence_candidates

Mistake = tuple[str, str, Tensor]


SCHEDULE = "linear from 0 over warmup_steps, then 0.5 * (1 + cos(π (step - warmup) / (steps - warmup)))"


def warmup_diagnosis(got: Tensor, right: Tensor, warmup: int) -> tuple[str, str]:
    """(code, hint) for a schedule that differs from the right one: when the steps from warmup_steps on are right and
    the warm-up steps 0 .. warmup - 1 are not, names a linear ramp from another start value, a sine or half-cosine
    ramp, and otherwise quotes the values seen next to linear-from-0's; else ("values", the formula)."""
    return _warmup_only(got, right, warmup) or _decay_only(got, right, warmup) or ("values", SCHEDULE)


def _power_ramp(g: Tensor, warmup: int) -> str | None:
    """Round BB: read the warm-up back as c · step^a on steps 1 .. warmup - 1 (an exact power law, a != 1), and name
    the inverted ratio warmup_steps / step, a square or a square root of the ratio."""
    s, v = torch.arange(1, warmup, dtype=torch.float64), g[1:warmup]
    if len(s) < 3 or not bool((v > 0).all()):
        return None
    design = torch.stack([torch.ones_like(s), s.log()], -1)
    log_c, a = torch.linalg.lstsq(design, v.log()[:, None]).solution.flatten().tolist()
    c = math.exp(log_c)
    if not torch.allclose(c * s**a, v, rtol=1e-6, atol=1e-9) or abs(a - 1) < 1e-6:
        return None
    named = {
        (-1.0, float(warmup)): "warmup_steps / step, the ratio inverted (it starts huge and falls)",
        (2.0, 1 / warmup**2): "(step / warmup_steps) ** 2, the ratio squared",
        (0.5, 1 / warmup**0.5): "sqrt(step / warmup_steps), the square root of the ratio",
    }
    for (power, coef), name in named.items():
        if abs(a - power) < 1e-6 and abs(c - coef) <= 1e-6 * coef:
            return name
    return f"{c:.4g} · step^{a:.4g}, a power law in step (not linear)"


def _warmup_only(got: Tensor, right: Tensor, warmup: int) -> tuple[str, str] | None:
    if warmup < 3 or len(got) <= warmup or not bool(torch.isfinite(got).all()):
        return None
    if not torch.allclose(got[warmup:], right[warmup:], rtol=1e-6, atol=1e-7):
        return None
    g, r = got[:warmup].double(), right[:warmup].double()
    if torch.allclose(g, r, rtol=1e-6, atol=1e-7):
        return None
    t = torch.arange(warmup, dtype=torch.float64) / warmup
    close = lambda a: bool(torch.allclose(g, a, rtol=1e-6, atol=1e-7))
    start = float(g[0])
    rest = "then the cosine from step warmup_steps on (that part is right)"
    if abs(start) > 1e-9 and close(start + (1 - start) * t):
        return "warmup_start", (
            f"your warm-up is linear but starts at {start:.4g} at step 0, rising to 1 at step warmup_steps: it starts "
            f"at 0, step / warmup_steps; {rest}"
        )
    shapes = {
        "a quarter sine, sin(π/2 · step / warmup_steps)": torch.sin(math.pi / 2 * t),
        "a half cosine, (1 - cos(π · step / warmup_steps)) / 2": (1 - torch.cos(math.pi * t)) / 2,
        "linear to 1 one step early, step / (warmup_steps - 1)": torch.arange(warmup, dtype=torch.float64)
        / (warmup - 1),
    }
    for name, values in shapes.items():
        if close(values):
            return "warmup_shape", f"your warm-up is {name}; it is linear, step / warmup_steps, {rest}"
    if (power := _power_ramp(g, warmup)) is not None:
        return "warmup_shape", f"your warm-up is {power}; it is linear, step / warmup_steps, {rest}"
    k = min(warmup, 4)
    seen = ", ".join(f"{float(v):.4g}" for v in g[:k])
    lin = ", ".join(f"{float(v):.4g}" for v in r[:k])
    return "warmup_shape", (
        f"only the warm-up is wrong: at steps 0..{k - 1} you return {seen} (starting at {start:.4g}), linear from 0 "
        f"gives {lin}. The warm-up is step / warmup_steps, from 0 at step 0 to 1 at step warmup_steps; {rest}"
    )


def _decay_fits(t: Tensor, g: Tensor) -> list[tuple[str, str, Tensor]]:
    """(how the decay reads, what to check, the fitted values) of the shapes a wrong decay part is compared with: a
    power of the right cosine A · c^k (c = 0.5 (1 + cos(π t)), so k = 2 is 'the cosine squared'), exponential
    A · exp(-λ t), linear a + b t, a power of the remaining fraction A · (1 - t)^k. Each is fitted by least squares
    (on the logarithm for the multiplicative ones, which needs g > 0)."""
    c = 0.5 * (1 + torch.cos(math.pi * t))
    ones = torch.ones_like(t)
    fits = []

    def lstsq(x: Tensor, y: Tensor) -> tuple[float, float]:
        a, b = torch.linalg.lstsq(torch.stack([ones, x], -1), y[:, None]).solution.flatten().tolist()
        return a, b

    a, b = lstsq(t, g)
    fits.append((f"linear, {a:.4g} {b:+.4g} · progress", "a straight line", a + b * t))
    if bool((g > 0).all()):
        log = g.log()
        scale = lambda a: "" if abs(math.exp(a) - 1) < 1e-4 else f"{math.exp(a):.4g} · "
        a, b = lstsq(t, log)
        fits.append((f"exponential, {scale(a)}exp({b:.4g} · progress)", "an exponential", math.exp(a) * (b * t).exp()))
        a, k = lstsq(c.log(), log)
        fits.append(
            (
                f"{scale(a)}(0.5 (1 + cos(π progress)))^{k:.3g}, the right cosine factor to the power {k:.3g}",
                "a power of the cosine factor (a square or exponent misplaced: 0.5 * (1 + cos) ** 2 squares the "
                "whole factor and doubles it)",
                math.exp(a) * c**k,
            )
        )
        keep = t < 1
        a, k = lstsq((1 - t[keep]).log(), log[keep])
        fits.append((f"{scale(a)}(1 - progress)^{k:.3g}", "a polynomial decay", math.exp(a) * (1 - t) ** k))
    return fits


def _decay_only(got: Tensor, right: Tensor, warmup: int) -> tuple[str, str] | None:
    """(code, hint) when the warm-up is right and the decay after it is not: the shape the decay follows exactly
    (exponential, linear, a power of the cosine, ...), else its values at a quarter, half and three quarters of
    the way next to the cosine's, its square's and a straight line's."""
    n = len(got) - warmup
    if n < 6 or not bool(torch.isfinite(got).all()):
        return None
    if not torch.allclose(got[:warmup], right[:warmup], rtol=1e-6, atol=1e-7):
        return None
    t = torch.arange(n, dtype=torch.float64) / n
    g = got[warmup:].double()
    right_part = (
        "the warm-up is right; the decay is half a cosine, 0.5 * (1 + cos(π progress)) with progress = (step - "
        "warmup_steps) / (steps - warmup_steps), from 1 down to 0"
    )
    for how, check, fitted in _decay_fits(t, g):
        if torch.allclose(fitted, g, rtol=1e-6, atol=1e-6):
            return "decay_shape", f"after the warm-up your factor is {how}: {check}, not the cosine; {right_part}"
    at = [n // 4, n // 2, 3 * n // 4]
    c = 0.5 * (1 + torch.cos(math.pi * t))
    row = lambda v: ", ".join(f"{float(v[i]):.3g}" for i in at)
    return "decay_shape", (
        f"only the decay after the warm-up is wrong: at progress ¼, ½, ¾ you return {row(g)}; the cosine gives "
        f"{row(c)}, its square {row(c**2)}, a straight line {row(1 - t)}; {right_part}"
    )


def nonfinite_rows_failure(out: object, data: Tensor, what: str) -> None:
    """out has NaN or infinite values exactly in the training examples that are all zero: they were divided by their
    zero norm (the training set normalised again)."""
    if not isinstance(out, Tensor) or tuple(out.shape) != tuple(data.shape) or not out.is_floating_point():
        return
    bad = ~torch.isfinite(out.detach().to(data.device))
    if not bool(bad.any()):
        return
    empty = data.abs().sum(-1) == 0  # [examples inst]
    if not bool(empty.any()) or not torch.equal(bad.any(-1), empty):
        return
    rows = ", ".join(f"({int(n)}, {int(i)})" for n, i in empty.nonzero()[:4])
    fail(
        f"{what} contains {int(bad.sum())} NaN or infinite values, all in the training examples that are all zero "
        f"(example, instance: {rows})",
        "NaN from dividing by a zero norm: rows that are all zero give 0 / 0. The training set is already normalised "
        "when it is drawn; return self.train_data as it is (and where you do normalise, clamp the norm: "
        "x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12))",
        code="renormalised_nan",
    )


def dimensionality_candidates(v: Tensor) -> tuple[list[Mistake], list[Mistake]]:
    """The catalogue's dimensionality mistakes on v [inst n d] plus the squared overlaps written as matrix products
    (`tests.part3_feature_geometry_overlaps`, shared with part 3)."""
    values, shapes = mistakes.dimensionality_candidates(v)
    extra = probes.dimensionality_candidates(v) + precedence_candidates(v) + signed_overlap_candidates(v)
    extra += mean_norm_candidates(v)
    listed = values + overlap_square_candidates(v) + whole_norm_candidates(v) + numerator_axis_candidates(v) + extra
    return listed + gram_slip_candidates(v, mistakes.dimensionality(v), listed), shapes


def numerator_axis_candidates(v: Tensor) -> list[Mistake]:
    """On v [inst n d] (n != d): the numerator's squared norm taken over the vectors axis instead of over d, then
    averaged over the other axis, so every vector of an instance gets the same numerator: (v**2).sum(-2).mean(-1) =
    ‖V‖²_F / d, or (v**2).mean(-2).sum(-1) = ‖V‖²_F / n (the mean of the ‖vᵢ‖²), or v.pow(2).mean((-2, -1))."""
    v = v.double()
    n, d = v.shape[-2], v.shape[-1]
    unit = v / v.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    den = torch.einsum("kid,kjd->kij", unit, v).pow(2).sum(-1)
    frob = v.pow(2).sum((-2, -1))[:, None].expand(den.shape)
    out = []
    for code, how, size in (
        ("(v**2).sum(-2).mean(-1)", f"the norm over the {n} vectors (dim -2), then averaged over d = {d}", d),
        ("(v**2).mean(-2).sum(-1)", f"the mean over the {n} vectors (dim -2) of the squared norms", n),
        ("v.pow(2).mean((-2, -1))", f"the mean over the {n} vectors and d = {d} coordinates", n * d),
    ):
        hint = (
            f"your numerator is the same for every vector of an instance, ‖V‖²_F / {size} = {code}: {how}. The "
            "numerator ‖vᵢ‖² is each vector's own squared norm, summed over d only: (v**2).sum(-1), one per vector"
        )
        out += [("numerator_axis", hint, value) for value in _guards(frob / size, den)]
    return out


def filled_rows_hint(c: float, n_feats: int) -> str:
    """What empty examples filled with one constant c say: 1 / sqrt(n_feats) is a uniform unit vector (an epsilon added
    to x before normalising); any other constant is a fill of the NaNs that 0 / 0 gives (both listed when unsure)."""
    eps = "an epsilon added to x before normalising turns an empty example into a uniform unit vector"
    fill = (
        f"the NaNs of 0 / 0 replaced by the constant {c:.4g} (torch.nan_to_num(x, nan={c:.4g}), or "
        f"torch.where(x.isnan(), {c:.4g}, x))"
    )
    fix = "an example with no feature present must stay all zeros: clamp the norm instead (norm.clamp_min(1e-12))"
    if abs(c * n_feats**0.5 - 1) < 1e-3:
        return f"{fix}. Possible causes: {eps}, or {fill}"
    return f"{fix}: {fill} (these examples do not have norm 1, so no epsilon before normalising explains them)"


def tiled_failure(out: object, data: Tensor, batch_size: int) -> None:
    """generate_batch(batch_size) with batch_size above n_train (100 > 40, not a multiple): the training set tiled or
    each example repeated (train_data.repeat(batch_size // n_train, 1, 1), repeat_interleave, expand) to reach the
    batch size, or its rows cut or otherwise resized by it. The stub ignores batch_size, so any batch size returns
    the whole set."""
    if not isinstance(out, Tensor) or out.device.type == "meta" or out.ndim != data.ndim or out.shape == data.shape:
        return
    n, m = data.shape[0], out.shape[0]
    what = f"generate_batch({batch_size})"
    if tuple(out.shape[1:]) == tuple(data.shape[1:]) and m > n and m % n == 0:
        got, d, r = out.detach().to(data.device, torch.float64), data.double(), m // n
        how = next(
            (
                label
                for label, tiled in (
                    ("the whole set tiled", d.repeat(r, 1, 1)),
                    ("each example repeated in place", d.repeat_interleave(r, 0)),
                )
                if torch.allclose(got, tiled)
            ),
            None,
        )
        if how:
            fail(
                f"{what} has {m} examples: {r} copies of the {n} training examples ({how}; {r} = {batch_size} // {n}"
                " = batch_size // n_train)"
                if r == batch_size // n
                else f"{what} has {m} examples: {r} copies of the {n} training examples ({how})",
                "batch_size is ignored (training is full batch): return self.train_data once, whatever batch_size is, "
                "not tiled (.repeat, repeat_interleave, expand) to reach the batch size",
                code="tiled",
            )
    if tuple(out.shape[1:]) == tuple(data.shape[1:]) and m in (batch_size, min(batch_size, n)) and m != n:
        fail(
            f"{what} has {m} examples, expected all {n} (batch_size {batch_size} > n_train {n})",
            "batch_size is ignored (training is full batch): return the whole self.train_data for any batch_size",
            code="batch_size_rows",
        )


def warmup_overwritten_failure(got: Tensor, right: Tensor, steps: int, warmup: int) -> None:
    """The warm-up steps hold the decay formula evaluated there (the decay branch ran for every step) and the rest
    is right: the warm-up value was overwritten (no else or return)."""
    if warmup < 2 or torch.allclose(got, right, rtol=1e-6, atol=1e-7):
        return
    s = torch.arange(warmup, dtype=torch.float64)
    decay = 0.5 * (1 + torch.cos(math.pi * (s - warmup) / (steps - warmup)))
    if torch.allclose(got[:warmup], decay, rtol=1e-6, atol=1e-7) and torch.allclose(
        got[warmup:], right[warmup:], rtol=1e-6, atol=1e-7
    ):
        fail(
            f"warmup_cosine_lr(step, steps={steps}, warmup_steps={warmup}): the first {warmup} steps hold the decay "
            f"formula evaluated there (step 0: {float(got[0]):.4g}, expected 0)",
            "the warm-up value is overwritten by the decay (no else or return): return the warm-up value, or put "
            "the decay in an else branch",
            code="warmup_overwritten",
        )


def rounded_schedule_failure(got: Tensor, right: Tensor, steps: int, warmup: int) -> None:
    """Every value sits on a grid of 10^-k (k = 1..4 decimals) and within half a grid step of the right one, and is
    not right: the factor was rounded (round(x, k), or a value copied from a print)."""
    if torch.allclose(got, right, rtol=1e-6, atol=1e-7) or not bool(torch.isfinite(got).all()):
        return
    for k in range(1, 5):
        scaled = got * 10**k
        on_grid = bool(((scaled - scaled.round()).abs() <= 1e-6).all())
        if on_grid and bool(((got - right).abs() <= 0.5 * 10**-k + 1e-9).all()):
            i = int((got - right).abs().argmax())
            fail(
                f"warmup_cosine_lr(step, steps={steps}, warmup_steps={warmup}): every value has at most {k} "
                f"decimal{'s' if k > 1 else ''} and lies within {0.5 * 10**-k:g} of the right one (step {i}: got "
                f"{float(got[i]):.6g}, expected {float(right[i]):.6g})",
                f"the factor is rounded to {k} decimal{'s' if k > 1 else ''} (round(x, {k}), or a value copied from "
                "a print): return the unrounded float",
                code="rounded",
            )
