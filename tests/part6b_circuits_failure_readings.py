"""Part 6b readings of failures that generic hints would misread: a singular I - Â from rows of Â with weight 1 on
their own node (self loops), influence scaled by the logit weights' sum, only some rows of Â normalised, and
quantile bands all empty because the max came out NaN."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.overrides import TorchFunctionMode

from tests.checking import fail
from tests.learner_errors import failing_line


# ------------------------------------------------------------------------------------------------ node_influence
def self_loops(err: BaseException, A: Tensor) -> None:
    """A singular-matrix error where one of the learner's n × n variables has weight 1 on its own node in a row
    (a self loop): that row of I - Â is 0, so I - Â is singular. Name the rows; else return."""
    if "singular" not in str(err).lower():
        return
    frame, _, _ = failing_line(err)
    n = len(A)
    eye = torch.eye(n, dtype=torch.float64)
    for name, value in frame.f_locals.items() if frame is not None else ():
        if not isinstance(value, Tensor) or value.shape != (n, n) or not value.is_floating_point():
            continue
        v = value.detach().double().cpu()
        loops = [i for i in range(n) if torch.equal(v[i], eye[i])]
        if loops and not torch.equal(v, eye) and torch.linalg.matrix_rank(eye - v) < n:
            empty = [i for i in loops if float(A[i].abs().sum()) == 0]
            why = f"; {len(empty)} of them have no incoming edges in the adjacency" if empty else ""
            fail(
                f"your code raised {type(err).__name__} (a singular matrix): `{name}` has weight 1 on "
                f"its own node in rows {loops[:6]}{why}, so those rows of I - Â are 0",
                "a self loop (Â[i, i] = 1, e.g. an identity row given to rows with no edges to avoid 0/0) "
                "makes I - Â singular: a row with no incoming edges stays a row of zeros in Â (divide by the "
                "row sum clamped away from 0, or skip zero rows), and Â[i, i] stays 0",
                code="self_loop",
            )


def singular_causes(err: BaseException) -> None:
    """A singular I - Â that no reading named: say what was observed and list the causes."""
    if "singular" not in str(err).lower():
        return
    fail(
        f"your code raised {type(err).__name__}: {str(err)[:120]}",
        "I - Â is invertible for the rows of a DAG normalised to sum 1 (Â is nilpotent): it turns singular when "
        "Â is not that matrix. Possible causes: a row of Â with weight 1 on its own node (a self loop, e.g. "
        "identity rows given to rows with no edges), a row sum of signed entries that is 0, Â transposed or "
        "built from something other than |A|, or I not the identity",
        code="singular",
    )


def weight_sum_factor(out: Tensor, right: Tensor, weights: Tensor) -> None:
    """out = right × a statistic of the logit weights (their sum, the sum of squares, the max, their number):
    read the factor back against them before any count reading of the same number."""
    keep = right.abs() > 1e-6
    if not keep.any() or out.shape != right.shape:
        return
    ratio = out[keep] / right[keep]
    c = float(ratio.mean())
    if not torch.allclose(ratio, torch.full_like(ratio, c), rtol=1e-4, atol=1e-7) or abs(c - 1) < 1e-4:
        return
    w = weights.detach()
    stats = {
        "the logit weights' sum": float(w.sum()),
        "the sum of the squared logit weights": float((w * w).sum()),
        "the largest logit weight": float(w.max()),
    }
    for said, s in stats.items():
        for power, how in ((1, "multiplied by"), (-1, "divided by")):
            if s != 0 and abs(c - s**power) < 1e-4 * max(1, abs(c)):
                fail(
                    f"the influence is {c:.6g} × the expected values: {how} {said} ({s:.6g})",
                    "the weights enter once, as the vector in w @ B (influence = w @ ((I - Â)⁻¹ - I)): no "
                    "extra factor from the weights",
                    code="weight_factor",
                )


def raw_rows(out: Tensor, A: Tensor, weights: Tensor) -> None:
    """Only some rows of Â normalised: try each group of rows left as raw |A| (the logit rows, weight != 0; the
    others; rows with a sum above / below 1) and name the group whose influence the output matches."""
    a = A.abs()
    sums = a.sum(-1)
    groups = {
        "the rows of the weighted (logit) nodes": weights != 0,
        "the rows of the nodes without a logit weight": (weights == 0) & (sums > 0),
        "the rows whose sum is below 1": (sums < 1) & (sums > 0),
        "the rows whose sum is above 1": sums > 1,
    }
    eye = torch.eye(len(A), dtype=A.dtype, device=A.device)
    for said, raw in groups.items():
        if not raw.any() or bool(raw.all()):
            continue
        hat = torch.where(raw[:, None], a, a / sums[:, None].clamp_min(1e-12))
        try:
            got = weights @ (torch.linalg.inv(eye - hat) - eye)
        except RuntimeError:
            continue
        if torch.isfinite(got).all() and torch.allclose(out, got, rtol=1e-4, atol=1e-6):
            fail(
                f"your influence is that of Â with {said} ({raw.nonzero().flatten().tolist()}) left as raw |A| "
                "and only the other rows normalised",
                "normalise EVERY row of |A| by its own sum (Â = |A| / |A|.sum(-1, keepdim=True), zero rows kept "
                "at 0), whatever kind of node the row belongs to",
                code="rows_unnormalised",
            )


# ------------------------------------------------------------------------------------------------ quantile_examples
class _NanWatch(TorchFunctionMode):
    """Records the first reduction (max, amax, ...) that returns NaN."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: str | None = None

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        result = func(*args, **(kwargs or {}))
        name = getattr(func, "__name__", "")
        if self.seen is None and name in {"max", "amax", "quantile", "nanquantile", "maximum"}:
            first = result[0] if isinstance(result, tuple) else result
            if isinstance(first, Tensor) and first.is_floating_point() and bool(first.isnan().any()):
                self.seen = name
        return result


def _still_empty(impl: Callable, acts: Tensor, k: int, n_bands: int) -> bool:
    """Does the learner's function return every band empty with a larger k as well?"""
    try:
        return not any(len(g[0]) for g in impl(acts.clone(), k, n_bands))
    except Exception:
        return False


def empty_bands(impl: Callable, acts: Tensor, out: Any, expected: list, k: int, n_bands: int) -> None:
    """Every band returned empty while the expected ones hold examples: a NaN max (e.g. BOS masked with NaN) makes
    every comparison False. Re-run on a copy watching for a NaN from a max; else say what was observed."""
    try:
        sizes = [len(g[0]) for g in out]
    except (TypeError, IndexError, KeyError):
        return
    if any(sizes) or not any(len(e[0]) for e in expected):
        return
    watch = _NanWatch()
    try:
        with watch:
            impl(acts.clone(), k, n_bands)
    except Exception:
        pass
    want = [len(e[0]) for e in expected]
    if not watch.seen and k // n_bands == 0 and not _still_empty(impl, acts, 2 * n_bands, n_bands):
        return  # k split among the bands: with k = 2·n_bands the bands fill, so it is left to that reading
    if watch.seen:
        fail(
            f"every band is empty (expected {want} examples), and a `{watch.seen}` in your code returned NaN",
            "a NaN in the activations (e.g. BOS masked with float('nan')) makes the max NaN, and every comparison "
            "with NaN is False, so no activation falls in any band: set BOS to 0 (acts[:, 0] = 0), which is not "
            "firing",
            code="nan_max",
        )
    fail(
        f"every band is empty (expected {want} examples)",
        "no activation fell inside any band: possible causes: a max m that is NaN or <= 0 (a NaN mask, the max "
        "taken after zeroing everything), band edges outside (0, m], or the comparisons the wrong way round "
        "(lo < a <= hi)",
        code="empty_bands",
    )
