"""Where and how a wrong output departs from the right one, for mistakes no catalogue lists.

Two kinds of description, both observations that are true by construction (never a guess at the cause):

- an elementwise relation: the learner's values are a known function of the right ones (their absolute
  values, squares, square roots, 1 − them, ...), which names the slip directly;
- a region of disagreement: the wrong entries are exactly those whose right value is 0, or negative, or one
  constant fills them, or they sit in one contiguous range of an axis (the first 10 steps of a schedule).

`expect_matches` in `tests.checking` puts `describe_disagreement` before the formula hint when nothing names the
mistake; `generic_diagnosis` uses `region_of_disagreement` to say what sets a lone wrong slice apart.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

Close = Callable[[Tensor, Tensor], bool]


def elementwise_relation(a: Tensor, e: Tensor, close: Close) -> str:
    """What `a` is when it is an elementwise function of `e` that names a slip ('your values are the squares of
    the right ones ...'), else ''."""
    candidates: list[tuple[str, Callable[[], Tensor], bool]] = [
        (
            "the absolute values of the right ones: a sign was lost (an abs, or the root of a square)",
            lambda: e.abs(),
            bool((e < 0).any()),
        ),
        (
            "the right ones with every negative value set to 0: a ReLU or clamp(min=0) not asked for",
            lambda: e.clamp(min=0),
            bool((e < 0).any()),
        ),
        (
            "the squares of the right ones: squared twice, or a square where none belongs",
            lambda: e * e,
            True,
        ),
        (
            "the square roots of the right ones: a square (or a squared norm) left out",
            lambda: e.clamp(min=0).sqrt(),
            bool((e >= 0).all()),
        ),
        (
            "1 − the right ones: the complement (for example the share kept where the share removed "
            "was asked, or the reverse)",
            lambda: 1 - e,
            True,
        ),
        ("1 / the right ones: a ratio upside down", lambda: 1 / e, bool((e != 0).all())),
        (
            "exp of the right ones: an exp not asked for (or a log left out)",
            lambda: e.exp(),
            bool((e.abs() < 30).all()),
        ),
        (
            "the log of the right ones: a log not asked for (or an exp left out)",
            lambda: e.log(),
            bool((e > 0).all()),
        ),
    ]
    for hint, relation, applies in candidates:
        if applies:
            value = relation()
            if bool(torch.isfinite(value).all()) and close(a, value):
                return f"your values are {hint}"
    return ""


def region_of_disagreement(a: Tensor, e: Tensor, bad: Tensor, atol: float) -> str:
    """A description of which entries are wrong when they form a recognisable set, else ''.

    `bad` marks the wrong entries. Every description says what was observed, then the usual causes."""
    n_bad, total = int(bad.sum()), bad.numel()
    if n_bad == 0 or n_bad == total:
        return ""
    zero = e.abs() <= atol
    if bool(zero[bad].all()):
        return (
            f"only entries whose right value is 0 are wrong ({n_bad} of the {int(zero.sum())} zeros; every non-zero "
            "entry is right): what your code leaves where the answer is 0 is off (a mask or gate that keeps a value "
            "there, a where() whose other branch isn't 0, a ReLU left out, or a small constant such as an eps added)"
        )
    filled = a[bad]
    if n_bad >= 2 and bool(torch.isclose(filled, filled[0].expand_as(filled), rtol=1e-6, atol=atol).all()):
        return _constant_fill(float(filled[0]), e[bad], n_bad, atol)
    negative, positive = e < -atol, e > atol
    for side, mask, other in (("negative", negative, "positive"), ("positive", positive, "negative")):
        share = float(mask.sum()) / max(1, int((~zero).sum()))
        # n_bad wrong entries all on one side by chance has probability share^n_bad: below 1e-3 it is evidence
        if share**n_bad > 1e-3:
            continue
        if bool(mask[bad].all()) and bool((~mask & ~zero).any()):
            return (
                f"only entries whose right value is {side} are wrong ({n_bad} of {int(mask.sum())}; every {other} "
                f"entry is right): your code treats {side} values differently (an abs, a ReLU or clamp, a square "
                "that loses the sign, or a comparison on the sign)"
            )
    return _few_over_tolerance(a, e, bad, n_bad)


def _few_over_tolerance(a: Tensor, e: Tensor, bad: Tensor, n_bad: int) -> str:
    """A handful of entries over the tolerance while many others differ slightly within it: a small change
    everywhere that crosses the tolerance only at a few entries (observed first, causes as e.g.)."""
    if n_bad > 3:
        return ""
    slight = (~bad & ((a - e).abs() > 1e-6 * e.abs() + 1e-7)).sum()
    if int(slight) < 10 * n_bad:
        return ""
    rel = float(((a - e).abs() / e.abs().clamp(min=1e-12))[bad].max())
    return (
        f"only {n_bad} entr{'y is' if n_bad == 1 else 'ies are'} over the tolerance (off by up to {rel:.2g} of the "
        f"right value), but {int(slight)} of the other {bad.numel() - n_bad} entries differ slightly too, within "
        "it: a small change that reaches every entry, e.g. an eps or a small constant added, a slightly different "
        "constant or scale, or a lower precision"
    )


def _constant_fill(c: float, right: Tensor, n_bad: int, atol: float) -> str:
    lo, hi = float(right.min()), float(right.max())
    if abs(c) <= atol:
        # fractions rounded down: `counts // n` or int(...) turns every value in (0, 1) into 0
        rounded = (
            ", or an integer division (`//`) or int cast that rounds fractions down to 0" if lo > 0 and hi < 1 else ""
        )
        return (
            f"{n_bad} entries are 0 where the right value isn't (right values there from {lo:.4g} to {hi:.4g}); every "
            "other entry is right: a mask, threshold or ReLU that removes too much (a strict or non-strict "
            f"comparison, a wrong threshold or index), or entries never written{rounded}"
        )
    if hi < c:
        how = f"values below {c:.4g} were raised to {c:.4g}: a clamp(min=…) or max(·, {c:.4g}) not asked for"
    elif lo > c:
        how = f"values above {c:.4g} were lowered to {c:.4g}: a clamp(max=…) or min(·, {c:.4g}) not asked for"
    else:
        how = "a fill value or default written where the right values belong"
    how += (
        "; or a reduction of one factor (a .sum()/.mean() of an upstream gradient, a kernel or a weight where the "
        "elementwise product belongs) that turned many values into one"
    )
    return (
        f"every wrong entry ({n_bad}) holds the same value {c:.4g} (right values there from {lo:.4g} to {hi:.4g}), "
        f"and every other entry is right: {how}"
    )


def contiguous_range(bad: Tensor, names: list[str]) -> str:
    """'only `step` 0–9 are wrong ...' for the axis along which the wrong entries fill the shortest range."""
    if not bool(bad.any()) or bool(bad.all()):
        return ""
    best: tuple[float, int, int, int] | None = None
    for axis in range(bad.ndim):
        size = bad.shape[axis]
        if size < 3:
            continue
        hit = bad.transpose(0, axis).reshape(size, -1).any(-1).nonzero().flatten()
        lo, hi = int(hit.min()), int(hit.max())
        span = hi - lo + 1
        # at most half the axis: a range covering most of it (the rest right by coincidence) would mislead
        if span == len(hit) and span > 1 and 2 * span <= size and (best is None or span / size < best[0]):
            best = (span / size, axis, lo, hi)
    if best is None:
        return ""
    _, axis, lo, hi = best
    name, size = names[axis], bad.shape[axis]
    rest = f"{0}–{lo - 1}" if hi == size - 1 else f"{hi + 1}–{size - 1}" if lo == 0 else f"below {lo} and above {hi}"
    return (
        f"only `{name}` {lo}–{hi} are wrong ({hi - lo + 1} of {size}); `{name}` {rest} are all right: compare what "
        f"your code does for `{name}` {lo}–{hi} with what it does for the others"
    )


def describe_disagreement(actual: Tensor, expected: Tensor, dims: str | None, rtol: float, atol: float) -> str:
    """How and where `actual` departs from `expected` ('your values are the absolute values of the right ones',
    'only `step` 1–9 are wrong ...'), or '' when no recognisable description fits. Never raises."""
    try:
        if actual.shape != expected.shape or not actual.is_floating_point() or actual.numel() < 2:
            return ""
        a, e = actual.detach().double().cpu(), expected.detach().double().cpu()
        names = dims.split() if dims and len(dims.split()) == a.ndim else [f"axis {i}" for i in range(a.ndim)]
        close = lambda x, y: bool(torch.allclose(x, y, rtol=rtol, atol=atol))
        bad = ~torch.isclose(a, e, rtol=rtol, atol=atol)
        found = elementwise_relation(a, e, close) or region_of_disagreement(a, e, bad, atol)
        found = found or contiguous_range(bad, names)
        return found
    except Exception:  # a description is a bonus: it never breaks the check
        return ""
