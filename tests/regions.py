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

    `bad` marks the wrong entries. Every description says what was observed; a cause is named only when a
    transformation of the right values reproduces the learner's exactly (read back), never from the pattern."""
    n_bad, total = int(bad.sum()), bad.numel()
    if n_bad == 0 or n_bad == total:
        return ""
    zero = e.abs() <= atol
    if bool(zero[bad].all()):
        return (
            f"only entries whose right value is 0 are wrong ({n_bad} of the {int(zero.sum())} zeros; every non-zero "
            f"entry is right): {_what_sits_at_zeros(a[bad], a, e, atol)}"
        )
    filled = a[bad]
    if n_bad >= 2 and bool(torch.isclose(filled, filled[0].expand_as(filled), rtol=1e-6, atol=atol).all()):
        return _constant_fill(float(filled[0]), a, e, bad, atol)
    negative, positive = e < -atol, e > atol
    for side, mask, other in (("negative", negative, "positive"), ("positive", positive, "negative")):
        share = float(mask.sum()) / max(1, int((~zero).sum()))
        # n_bad wrong entries all on one side by chance has probability share^n_bad: below 1e-3 it is evidence
        if share**n_bad > 1e-3:
            continue
        if bool(mask[bad].all()) and bool((~mask & ~zero).any()):
            return (
                f"only entries whose right value is {side} are wrong ({n_bad} of {int(mask.sum())}; every {other} "
                f"entry is right): {_what_sits_on_one_side(a[bad], e[bad], side, atol)}"
            )
    return _few_over_tolerance(a, e, bad, n_bad)


def _what_sits_at_zeros(wrong: Tensor, a: Tensor, e: Tensor, atol: float) -> str:
    """What the learner left where the answer is 0, read back: negatives a clamp at 0 would remove, one constant,
    or the range of values seen."""
    if bool((wrong < 0).all()) and bool(torch.allclose(a.clamp(min=0), e, rtol=1e-4, atol=atol)):
        return (
            "they are negative, and your output with its negative entries set to 0 is exactly right (what a ReLU "
            "or clamp(min=0) there would give)"
        )
    if wrong.numel() >= 2 and bool(torch.isclose(wrong, wrong[0].expand_as(wrong), rtol=1e-6, atol=atol).all()):
        return f"each of them holds {float(wrong[0]):.4g} where the answer is 0"
    return (
        f"where the answer is 0 yours hold values from {float(wrong.min()):.4g} to {float(wrong.max()):.4g}: "
        "look at what your code leaves in those entries"
    )


def _what_sits_on_one_side(wrong: Tensor, right: Tensor, side: str, atol: float) -> str:
    """How the wrong entries relate to the right ones there, read back, else the observation alone."""
    if bool((wrong.abs() <= atol).all()):
        return f"they came out 0 (what a ReLU, clamp or mask that removes {side} values would give)"
    if bool(torch.allclose(wrong, -right, rtol=1e-4, atol=atol)):
        return "they have the opposite sign of the right ones (what an abs, or the root of a square, would give)"
    return f"your code does something different with {side} values (yours there: {float(wrong.min()):.4g} to " + (
        f"{float(wrong.max()):.4g})"
    )


def _few_over_tolerance(a: Tensor, e: Tensor, bad: Tensor, n_bad: int) -> str:
    """A handful of entries over the tolerance while many others differ slightly within it: a small change
    everywhere that crosses the tolerance only at a few entries (an observation)."""
    if n_bad > 3:
        return ""
    slight = (~bad & ((a - e).abs() > 1e-6 * e.abs() + 1e-7)).sum()
    if int(slight) < 10 * n_bad:
        return ""
    rel = float(((a - e).abs() / e.abs().clamp(min=1e-12))[bad].max())
    return (
        f"only {n_bad} entr{'y is' if n_bad == 1 else 'ies are'} over the tolerance (off by up to {rel:.2g} of the "
        f"right value), but {int(slight)} of the other {bad.numel() - n_bad} entries differ slightly too, within "
        "it: a small change reaches every entry, so look for something computed slightly differently everywhere "
        "rather than at those entries"
    )


def _constant_fill(c: float, a: Tensor, e: Tensor, bad: Tensor, atol: float) -> str:
    right = e[bad]
    n_bad, lo, hi = int(bad.sum()), float(right.min()), float(right.max())
    observed = (
        f"every wrong entry ({n_bad}) holds the same value {c:.4g} (right values there from {lo:.4g} to {hi:.4g}), "
        "and every other entry is right"
    )
    if abs(c) <= atol:
        # fractions rounded down: `counts // n` or int(...) turns every value in (0, 1) into 0
        rounded = (
            "; every one of them is a fraction between 0 and 1, which an integer division (`//`) or an int cast "
            "rounds down to 0"
            if lo > 0 and hi < 1
            else ""
        )
        kept = e[~bad & (e.abs() > atol)].abs()
        smallest = (
            f"; they are exactly the {n_bad} smallest right values (|value| ≤ {float(right.abs().max()):.4g}, every "
            "larger one kept), as a threshold set too high would give"
            if kept.numel() and float(right.abs().max()) < float(kept.min())
            else ""
        )
        return f"{n_bad} entries are 0 where the right value isn't (right values there from {lo:.4g} to {hi:.4g}); " + (
            f"every other entry is right: they were set to 0 or never written{smallest}{rounded}"
        )
    close = lambda x: bool(torch.allclose(a, x, rtol=1e-4, atol=atol))
    if hi < c:
        how = f"values below {c:.4g} were raised to {c:.4g}" + (
            f": your output is exactly the right one with clamp(min={c:.4g}) (or max(·, {c:.4g})) applied"
            if close(e.clamp(min=c))
            else ""
        )
    elif lo > c:
        how = f"values above {c:.4g} were lowered to {c:.4g}" + (
            f": your output is exactly the right one with clamp(max={c:.4g}) (or min(·, {c:.4g})) applied"
            if close(e.clamp(max=c))
            else ""
        )
    else:
        how = "one value was written where these different values belong"
    if "exactly" not in how and abs(c) > float(right.abs().max()):
        how += (
            "; a number outside the right values' range: one number made from many (a .sum()/.mean() of a factor "
            "where the elementwise product belongs), or a fill value or default"
        )
    return f"{observed}: {how}"


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
        f"only `{name}` {lo}–{hi} are wrong ({hi - lo + 1} of {size}); `{name}` {rest} are all right: look for what "
        "sets them apart, in your code or in their inputs"
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
