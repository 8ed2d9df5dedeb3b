"""Part 3's D* = d_hidden / ‖W‖²_F with ‖W‖²_F summed over only some of the features: the learner's denominator
d_hidden / D* read back and matched against the sums of ‖W_i‖² over every subset of an instance's features, so a
threshold ('represented' features only), a slice or a mask is named by the features it kept."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from tests.checking import fail


def _subsets(sq: Tensor, den: Tensor) -> list[list[int]] | None:
    """Per instance, the one subset of features whose Σ ‖W_i‖² is `den` (relative 1e-5), or None when an instance has
    none or several. Sums over the 2^n subsets of n <= 12 features; float32 outputs are exact to ~1e-7 relative,
    and a chance match of a spread of 2^n sums to 1e-5 in every one of the instances is negligible."""
    n = sq.shape[-1]
    if n > 12:
        return None
    masks = (torch.arange(2**n)[:, None] >> torch.arange(n)) & 1  # [2^n n]
    sums = sq @ masks.double().T  # [inst 2^n]
    hit = (sums - den[:, None]).abs() <= 1e-5 * den.abs()[:, None]
    if not bool((hit.sum(-1) == 1).all()):
        return None
    return [masks[int(h.nonzero()[0, 0])].nonzero().flatten().tolist() for h in hit]


def subset_norm_failure(out: Tensor, W: Tensor, what: str) -> None:
    """Name a ‖W‖²_F that sums ‖W_i‖² over only some features (the same subset rule in every instance that lost any)."""
    got = out.detach().double().cpu()
    if got.shape != W.shape[:1] or not bool(torch.isfinite(got).all()) or bool((got <= 0).any()):
        return
    Wd = W.detach().double().cpu()
    sq, den = Wd.pow(2).sum(1), W.shape[1] / got  # [inst feats], [inst]
    kept = _subsets(sq, den)
    n = sq.shape[-1]
    if kept is None or all(len(k) == n for k in kept) or any(len(k) == 0 for k in kept):
        return
    norms = sq.sqrt()
    inside = torch.cat([norms[i, k] for i, k in enumerate(kept)])
    left = torch.cat([norms[i, [j for j in range(n) if j not in k]] for i, k in enumerate(kept)])
    seen = "; ".join(
        f"instance {i}: features {k}" if len(k) < n else f"instance {i}: all {n}" for i, k in enumerate(kept)
    )
    single = [int(sq[i].argmax()) if len(k) == 1 and k[0] == int(sq[i].argmax()) else None for i, k in enumerate(kept)]
    lowest = [len(k) == 1 and k[0] == int(sq[i].argmin()) for i, k in enumerate(kept)]
    if all(j is not None for j in single) or all(lowest):
        which, fn = ("largest", "amax / max") if all(j is not None for j in single) else ("smallest", "amin / min")
        fail(
            f"{what}: d_hidden / your value is, in every instance, the {which} ‖W_i‖² of its features ({seen}; "
            f"{n} features each), not their sum",
            f"an {fn} over the features replaced the sum: ‖W‖²_F = Σ_i ‖W_i‖², W.pow(2).sum((1, 2))",
            code=f"{which}_feature_only",
        )
    if float(inside.min()) > float(left.max()):
        rule = (
            f"exactly the features with ‖W_i‖ above a threshold between {float(left.max()):.3g} and "
            f"{float(inside.min()):.3g} are counted (a 'represented features' filter or mask, such as norms > 0.5)"
        )
    elif float(inside.max()) < float(left.min()):
        rule = (
            f"exactly the features with ‖W_i‖ below a threshold between {float(inside.max()):.3g} and "
            f"{float(left.min()):.3g} are counted"
        )
    else:
        rule = "some features are left out (a slice such as [..., :-1] or [..., 1:], a mask, or an index)"
    fail(
        f"{what}: d_hidden / your value is the sum of ‖W_i‖² over only some features ({seen}; {n} features each)",
        f"{rule}; ‖W‖²_F sums every feature's ‖W_i‖², whatever its size (a weak feature counts for its small "
        "‖W_i‖²): W.pow(2).sum((1, 2))",
        code="features_subset",
    )


def _constant_factor_hint(f: float, d: int, n_feats: int) -> str:
    """What a result off from d_hidden / ‖W‖²_F by one constant factor f (the same in every instance) says: the factor
    may sit on either side, the numerator or the denominator, so both are named."""
    for label, size, axes in (
        ("d_hidden", d, "d_hidden"),
        ("n_features", n_feats, "the features"),
        ("d_hidden · n_features", d * n_feats, "both axes"),
    ):
        if abs(f - size) <= 1e-3 * size:
            return (
                f"a factor {label} = {size} too many, on either side: the numerator multiplied by {label} (d_hidden · "
                f"{label}), or the denominator a mean over {axes} (‖W‖²_F / {size}, e.g. W.pow(2).mean(...)) where a "
                "sum belongs. D* = d_hidden / W.pow(2).sum((1, 2))"
            )
        if abs(f * size - 1) <= 1e-3:
            return (
                f"a factor {label} = {size} missing, on either side: the numerator divided by {label}, or the "
                f"denominator multiplied by it. D* = d_hidden / W.pow(2).sum((1, 2))"
            )
    return (
        f"one constant factor {f:.4g} off in every instance: the numerator is not d_hidden = {d}, or the denominator "
        "is ‖W‖²_F times a constant (a mean where a sum belongs?). D* = d_hidden / W.pow(2).sum((1, 2))"
    )


def rounded_result_failure(out: Tensor, W: Tensor, what: str) -> None:
    """D* = d_hidden / ‖W‖²_F rounded to a whole number in every instance (floor division d // ‖W‖²_F, an int() cast,
    round or ceil). Named only where the right values are not all whole numbers, so a right answer never matches."""
    got = out.detach().double().cpu()
    right = W.shape[1] / W.detach().double().pow(2).sum((1, 2)).cpu()
    if got.shape != right.shape or bool((right == right.round()).all()):
        return
    for how, value in (
        ("rounded down (floor division `//` or an int() cast)", right.floor()),
        ("rounded to the nearest whole number", right.round()),
        ("rounded up", right.ceil()),
    ):
        if torch.equal(got, value):
            fail(
                f"{what} is {[round(x, 4) for x in got.tolist()]}: the right values "
                f"{[round(x, 4) for x in right.tolist()]} {how}",
                "your result is a whole number: an integer division `//` (d_hidden // ‖W‖²_F floors the fraction, "
                "0 whenever ‖W‖²_F > d_hidden), an int() or round on the way; D* is a fraction: use true division, "
                "d_hidden / W.pow(2).sum((1, 2))",
                code="rounded_result",
            )


def constant_numerator_failure(out: Tensor, W: Tensor, what: str) -> None:
    """D* read back as c / ‖W‖²_F with one c for every instance: name the numerator c. A c equal to n_features (on a
    W whose two axes differ) is d_hidden read from the wrong axis, or as min(W.shape[1:]) on a wide W."""
    rounded_result_failure(out, W, what)
    numerator = (out.detach().double().cpu() * W.double().pow(2).sum((1, 2)).cpu()).tolist()
    if not all(math.isfinite(c) for c in numerator) or max(numerator) - min(numerator) > 1e-4 * max(
        abs(c) for c in numerator
    ):
        return
    c, d, n_feats = numerator[0], W.shape[1], W.shape[2]
    message = f"{what} is {c:.4g} / ‖W‖²_F for every instance, expected d_hidden / ‖W‖²_F = {d} / ‖W‖²_F"
    if d != n_feats and abs(c - n_feats) <= 1e-4 * n_feats:
        smaller = " (here also min(d_hidden, n_features): the smaller axis)" if n_feats < d else ""
        fail(
            message,
            f"your numerator is n_features = {n_feats}{smaller}: d_hidden is the size of W's hidden axis, "
            "W.shape[1], whether W is taller or wider than square (not W.shape[2], nor min(W.shape[1:]), nor a rank)",
            code="numerator",
        )
    fail(message, _constant_factor_hint(c / d, d, n_feats), code="numerator")
