"""Part 4 read-backs: a diagnosis that names a cause only after reproducing the learner's output from it.

- generate_dataset: a weight per feature (part 1's importance) read back from within-example ratios;
- generate_batch: a transform of self.train_data (centred, standardised, shifted) read back before "redrawn";
- compute_dimensionality: two calls on the same input (a random subsample), a swapped torch.where read back at a
  zero vector, and the square applied before the matrix product (`unit @ v.mT ** 2`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from tests.checking import fail
from tests.part4_double_descent_collapsed_rows import collapsed_rows_failure

Mistake = tuple[str, str, Tensor]


# --------------------------------------------------------------------------------------------
# generate_dataset: a weight per feature
# --------------------------------------------------------------------------------------------
def feature_log_scales(x: Tensor) -> Tensor:
    """Least-squares log scale a_f of every feature (mean 0) from the within-example ratios of present values.

    For two features f, g present in the same example, log x_f - log x_g = a_f - a_g + log u_f - log u_g: the
    normalisation cancels, and the noise has mean 0 when both values are U[0, 1] draws of the same law (so a
    correct answer gives a_f = 0 up to noise; a weight w_f on feature f gives a_f - a_g = log(w_f / w_g)).
    """
    x = x.double().flatten(0, -2)
    present = x > 0
    x = x[present.sum(-1) >= 2]
    present = x > 0
    logs = torch.where(present, x.clamp_min(1e-300).log(), 0.0)
    k = present.double().sum(-1, keepdim=True)
    pres = present.double()
    # Σ over ordered pairs (f, g) in a row of (e_f - e_g)(e_f - e_g)ᵀ and (log x_f - log x_g)(e_f - e_g)
    lap = torch.diag((pres * (k - 1)).sum(0)) - (pres.T @ pres - torch.diag(pres.sum(0)))
    rhs = (pres * (k * logs - logs.sum(-1, keepdim=True))).sum(0)
    a = torch.linalg.pinv(lap) @ rhs
    return a - a.mean()


def feature_weight_failure(x: Tensor) -> None:
    """x [examples inst feats] float64, unit-norm examples. Fails when the features' scales differ.

    Noise: each a_f is a mean over about 4000 pair differences (18000 rows, 0.1 * 2.3 partners each) of log u_f -
    log u_g (variance 2, log U[0, 1] has exponential tails), so its standard error is about 0.03; a spread of 0.5
    (a factor e^0.5 = 1.65 between two features) is over 15 standard errors: a correct answer never reaches it.
    """
    a = feature_log_scales(x)
    if float(a.max() - a.min()) <= 0.5:
        return
    f = torch.arange(a.numel(), dtype=torch.float64)
    slope = float(((f - f.mean()) * a).sum() / ((f - f.mean()) ** 2).sum())
    residual = float((a - a.mean() - slope * (f - f.mean())).abs().max())
    scales = (a - a[0]).exp()
    listed = ", ".join(f"{s:.3g}" for s in scales[:5].tolist())
    message = (
        f"the present values differ by feature: read back from the ratios of values present in the same example, "
        f"features 0, 1, 2, 3, 4 have scales {listed} (relative to feature 0; last feature: {float(scales[-1]):.3g})"
    )
    if residual < 0.15:
        r = math.exp(slope)
        fail(
            message,
            f"the scales follow a geometric law, feature i scaled by {r:.3f}**i: a per-feature weight such as part "
            "1's importance (0.9**i) was applied to the values. Here every present feature's value is a plain "
            "torch.rand draw (U[0, 1]) before normalising, the same law for every feature",
            code="feature_weights",
        )
    fail(
        message,
        "a per-feature weight (e.g. an importance or a scale per feature) was applied to the values: every present "
        "feature's value is a plain torch.rand draw (U[0, 1]) before normalising, the same law for every feature",
        code="feature_weights",
    )


# --------------------------------------------------------------------------------------------
# generate_batch: a transform of self.train_data
# --------------------------------------------------------------------------------------------
_AXES = ("examples", "inst", "feats")


def train_data_transform_failure(wrong: Tensor, data: Tensor) -> None:
    """Read back wrong = a transform of data computed over one axis (centred, standardised, min-shifted)."""
    got, d = wrong.detach().double().cpu(), data.double().cpu()
    if got.shape != d.shape:
        return
    collapsed_rows_failure(got, d)
    for axis, name in enumerate(_AXES):
        mean = d.mean(axis, keepdim=True)
        transforms = [
            (f"train_data - train_data.mean({axis}): centred over the {name}", d - mean),
            (
                f"(train_data - mean) / std over the {name} ({axis}): standardised",
                (d - mean) / d.std(axis, keepdim=True).clamp_min(1e-12),
            ),
            (
                f"(train_data - mean) / std over the {name} ({axis}, unbiased=False): standardised",
                (d - mean) / d.std(axis, keepdim=True, unbiased=False).clamp_min(1e-12),
            ),
            (f"train_data - train_data.amin({axis}): shifted by the minimum over the {name}", d - d.amin(axis, True)),
        ]
        for how, value in transforms:
            if torch.allclose(got, value, rtol=1e-4, atol=1e-6):
                fail(
                    "generate_batch returned the same shape as self.train_data but other values; they are read "
                    f"back exactly as {how}",
                    "return the training set self.train_data itself, unchanged: the model is trained on the data as "
                    "generated (no centring, standardising or shifting)",
                    code="train_data_transformed",
                )
    shift = got - d
    for axis, name in enumerate(_AXES):
        if shift.shape[axis] > 1 and torch.allclose(shift, shift.narrow(axis, 0, 1).expand_as(shift), atol=1e-6):
            fail(
                f"your output minus self.train_data is the same for every entry along the {name} axis: the training "
                f"set shifted by a term computed over the {name} (up to {float(shift.abs().max()):.3g})",
                "return self.train_data itself, unchanged: nothing added to or subtracted from it (e.g. a mean or "
                "another statistic of the data)",
                code="train_data_transformed",
            )


# --------------------------------------------------------------------------------------------
# compute_dimensionality
# --------------------------------------------------------------------------------------------
def _safe(fn: Callable[[Tensor], Tensor | None], x: Tensor) -> Tensor | None:
    """fn on a copy of x as a float64 CPU tensor (NaN kept); None when it raises or returns no float tensor."""
    try:
        y = fn(x.detach().clone())
    except Exception:
        return None
    return y.detach().double().cpu() if isinstance(y, Tensor) and y.is_floating_point() else None


def nondeterministic_failure(fn: Callable[[Tensor], Tensor | None], v: Tensor, out: Tensor) -> None:
    """Two calls on the same vectors: a function of the vectors gives the same values."""
    again = _safe(fn, v)
    if again is None or again.shape != out.shape:
        return
    a, b = out.detach().double().cpu(), again
    if torch.allclose(a, b, rtol=1e-5, atol=1e-7, equal_nan=True):
        return
    fail(
        f"two calls of compute_dimensionality on the same vectors returned different values (up to "
        f"{float((a - b).abs().nan_to_num(0.0).max()):.3g} apart)",
        "D_i is a fixed function of the vectors, but something random is in yours: e.g. a random subsample of "
        "the vectors j in the sum (torch.randperm / torch.randint, a Monte-Carlo estimate rescaled by n / m) or "
        "random noise: sum (v̂_i·v_j)² over every vector j of the instance, with no randomness",
        code="nondeterministic",
    )


def zero_output_failure(fn: Callable[[Tensor], Tensor | None], v: Tensor, out: Tensor, expected: Tensor) -> None:
    """All values 0 where D_i > 0: read back a swapped torch.where at a zero vector (its formula branch is 0 / 0)."""
    got = out.detach().double().cpu()
    if not bool((got == 0).all()) or not bool((expected.abs() > 1e-9).all()):
        return
    with_zero = torch.cat([v.detach()[:1, :4], torch.zeros_like(v.detach()[:1, :1])], 1)
    at = _safe(fn, with_zero)
    message = (
        f"your values are all 0 (expected D_i between {float(expected.min()):.3g} and {float(expected.max()):.3g})"
    )
    if isinstance(at, Tensor) and at.shape == (1, 5) and bool((at[0, :4] == 0).all()) and not bool(at[0, 4] == 0):
        fail(
            f"{message}, and for a zero vector you return {float(at[0, 4]):.3g} instead of 0: the values of the two "
            "cases are swapped",
            "the torch.where's branches are swapped: torch.where(cond, a, b) takes a where cond is True, so "
            "torch.where(den > 0, 0, formula) gives 0 at every non-zero vector and the formula (0 / 0) at a zero "
            "vector; write torch.where(den > 0, formula, 0) (or clamp the denominator)",
            code="where_swapped",
        )
    fail(
        message,
        "e.g. a mask or torch.where that zeroes every value (branches swapped, a condition that is always True), "
        "or a product with 0: D_i = ‖v_i‖² / Σ_j (v̂_i·v_j)² is positive for every non-zero vector",
        code="all_zero",
    )


def precedence_candidates(v: Tensor) -> list[Mistake]:
    """On v [inst n d]: the square applied before the matrix product (** binds tighter than @)."""
    v = v.double()
    norm_sq = v.pow(2).sum(-1)
    unit = v / norm_sq.sqrt().clamp_min(1e-12)[..., None]
    tail = "(** binds tighter than @): square the product, (unit @ vectors.mT) ** 2, then sum over j"
    return [
        (
            "square_before_matmul",
            f"your overlaps are v̂_i · (v_j²), the coordinates squared before the dot product: `unit @ vectors.mT ** 2` "
            f"squares vectors.mT before the matmul {tail}",
            norm_sq / (unit @ v.pow(2).mT).sum(-1).clamp_min(1e-30),
        ),
        (
            "square_before_matmul",
            f"your overlaps are (v̂_i²) · v_j, the coordinates squared before the dot product: `unit ** 2 @ "
            f"vectors.mT` squares unit before the matmul {tail}",
            norm_sq / (unit.pow(2) @ v.mT).sum(-1).clamp_min(1e-30),
        ),
    ]


def absent_filled_failure(got: Tensor, data: Tensor, what: str) -> None:
    """Round BB: the absent features of self.train_data are exactly 0; an output of the right shape with small
    non-zero values there (train_data.clamp(min=1e-6), + eps) passed the value tolerance. Any exact-0 entry of the
    data that comes back non-zero is named (a renormalised copy keeps its zeros, so a correct variant passes)."""
    if not isinstance(got, Tensor) or got.device.type == "meta" or got.shape != data.shape:
        return
    g, d = got.detach().to(data.device, torch.float64), data.double()
    filled = (d == 0) & (g != 0) & torch.isfinite(g)
    if not bool(filled.any()) or not bool(((g - d).abs() <= 1e-3).all()):
        return
    values = g[filled]
    fail(
        f"{what}: {int(filled.sum())} of the {int((d == 0).sum())} entries that are exactly 0 in self.train_data "
        f"(absent features) are non-zero in your output (from {float(values.min()):.3g} to {float(values.max()):.3g})",
        "absent features stay exactly 0: return self.train_data unchanged (no clamp(min=...), no eps added)",
        code="absent_filled",
    )
