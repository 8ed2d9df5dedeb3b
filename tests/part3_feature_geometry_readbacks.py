"""Part 3 read-backs that name a slip only once it reproduces the learner's output: a numerator that is some count
of W (its instances, its number of axes), an output that is 0 everywhere (a swapped `torch.where` is named only when a
probe with a zero column shows 0 exactly where the column is non-zero), `unit.mT @ W ** 2` (`**` binds tighter than
`@`: Ŵᵀ(W∘W) where (ŴᵀW)² was meant), and the per-instance results joined flat with `torch.cat`."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from tests.checking import fail

Mistake = tuple[str, str, Tensor]


def dpf_readings(W: Tensor, frob_sq: Tensor) -> list[Mistake]:
    """D* = c / ‖W‖²_F with c another count of W than d_hidden (the checker's W has no two of them equal), and
    d_hidden over a sum of something other than the squares of all the entries."""
    n_inst, d, n_feats = W.shape
    gram = W.mT @ W  # [inst feats feats]
    # .diagonal() with its default dims (0, 1) on the batched Gram pairs instance m with feature m: G[m, m, :]
    # [feats, min(inst, feats)]; a sum over dim 0 then gives Σ_j W_m·W_j of instance m, not the trace
    wrong_dims = gram.diagonal().sum(0) if n_inst <= n_feats else None
    return [
        *(
            []
            if wrong_dims is None
            else [
                (
                    "diagonal_default_dims",
                    "your denominator for instance m is Σ_j W_m·W_j of instance m (row m of its Gram matrix WᵀW): "
                    ".diagonal() on the batched [inst feats feats] Gram takes dims (0, 1) by default, pairing "
                    "instance m with feature m; take the diagonal over the feature axes, "
                    "(W.mT @ W).diagonal(dim1=-2, dim2=-1).sum(-1), or simply W.pow(2).sum((1, 2))",
                    d / wrong_dims,
                )
            ]
        ),
        (
            "numerator_features",
            "the numerator is d_hidden = W.shape[1] (the hidden dimensions), not the number of features W.shape[2]",
            n_feats / frob_sq,
        ),
        (
            "numerator_instances",
            "the numerator is d_hidden = W.shape[1], not the number of instances W.shape[0] (len(W))",
            n_inst / frob_sq,
        ),
        (
            "numerator_ndim",
            f"your numerator is W.ndim = {W.ndim}, the number of axes of W; d_hidden is the size of one axis, "
            "W.shape[1]",
            W.ndim / frob_sq,
        ),
        ("numerator_one", "the numerator is d_hidden = W.shape[1], not 1", 1 / frob_sq),
        (
            "exp2_not_square",
            "your denominator sums 2**W (W.exp2(), two to the power of each entry): square each entry instead, "
            "W.pow(2) or W ** 2",
            d / W.exp2().sum((1, 2)),
        ),
        (
            "positive_part_only",
            "your denominator sums the squares of the positive entries only (W.clamp(min=0), relu): a negative "
            "weight counts as much as a positive one, ‖W‖²_F = W.pow(2).sum((1, 2))",
            d / W.clamp(min=0).pow(2).sum((1, 2)),
        ),
    ]


def flat_join(right: Tensor) -> list[Mistake]:
    """The right [inst, feats] values on one axis, instance after instance."""
    n = right.numel()
    return [
        (
            "cat_not_stack",
            f"your output is the right values flattened to one axis of {n}, instance after instance: per-instance "
            "results joined with torch.cat (it joins along their existing feats axis) where torch.stack belongs "
            "(it makes the new inst axis); a flatten() or reshape(-1) at the end gives the same",
            right.reshape(-1),
        )
    ]


def expect_no_zeroed(out: Tensor, expected: Tensor, what: str, W: Tensor, fn: Callable | None = None) -> None:
    """Name a threshold: every value right except some set to 0 where the answer is not 0, and the zeroed ones are
    exactly the features below some column norm (or right value), as a threshold in the zero guard leaves them.
    Zeros that don't sort that way (a whole instance, feature 0 of every instance: entries a loop never wrote) are
    left to `expect_matches`, whose region description lists those causes. An output that is 0 everywhere goes to
    `_all_zero_failure` (with `fn`, the learner's function, to probe)."""
    if tuple(out.shape) != tuple(expected.shape) or not out.is_floating_point():
        return
    got, want = out.detach().double().cpu(), expected.double().cpu()
    zeroed = (got == 0) & (want.abs() > 1e-6)
    rest_right = torch.isclose(got, want, rtol=1e-4, atol=1e-5) | zeroed
    if not (zeroed.any() and bool(rest_right.all())):
        return
    kept = ~zeroed & (want.abs() > 1e-6)
    if not kept.any():
        if fn is not None:
            _all_zero_failure(what, W, fn, int(zeroed.sum()))
        return
    norms = W.detach().double().norm(dim=1).cpu()
    if not any(float(q[zeroed].max()) < float(q[kept].min()) for q in (norms, want.abs())):
        return
    idx = [int(i) for i in zeroed.nonzero()[0]]
    fail(
        f"{what} is 0 at {int(zeroed.sum())} position(s) where it should not be (first at {idx}: expected "
        f"{want[tuple(idx)].item():.4g}), and these are exactly the features with the shortest columns (or the "
        "smallest right values); everything else is right",
        "only an all-zero vector gets 0: a small but non-zero one keeps its value. Is there a threshold (on the "
        "norm, or a clamp that is too large) in the zero-vector guard?",
        code="zeroed_small",
    )


def _all_zero_failure(what: str, W: Tensor, fn: Callable, n: int) -> None:
    """Every value is 0 where none should be. Probe: W with feature 0's column zeroed in every instance. A swapped
    `torch.where` (0 where the column is non-zero, the formula's 0/0 where it is zero) gives 0 at every non-zero
    column and something other than 0 at the zero one; only then is it named."""
    observed = f"{what} is 0 at every position ({n} values), and no right value is 0 (W has no zero column)"
    probe = W.clone()
    probe[:, :, 0] = 0
    try:
        got = fn(probe)
    except Exception:  # the probe is only evidence; the observation stands without it
        got = None
    if isinstance(got, Tensor) and tuple(got.shape) == (W.shape[0], W.shape[2]) and got.is_floating_point():
        g = got.detach().double().cpu()
        if bool((g[:, 1:] == 0).all()) and not bool((g[:, 0] == 0).all()):
            fail(
                f"{observed}; with feature 0's column set to zeros it gives {[round(v, 4) for v in g[:, 0].tolist()]} "
                "there and still 0 at every non-zero column",
                "0 exactly where the column is non-zero: the two value arguments of torch.where are swapped (or its "
                "condition inverted). torch.where(cond, a, b) takes a where cond is True: "
                "torch.where(denominator > 0, norms_sq**2 / denominator, 0)",
                code="where_swapped",
            )
    fail(
        observed,
        "print a few intermediate values to see where they become 0: e.g. a result that is never written (a "
        "zeros_like returned, a loop filling a copy), a mask or torch.where whose condition is never True, or a "
        "rounding/integer dtype on the way",
        code="all_zero",
    )


def squared_before_matmul_failure(out: Tensor, W: Tensor, what: str) -> None:
    """`unit.mT @ W ** 2` is Ŵᵀ(W∘W): Σ_j Σ_d Ŵ_di W_dj² (`W.mT @ W ** 2` with ‖W_i‖⁴ on top). Named when the learner's
    output equals it at every position where that denominator is positive (at least 3); where it is not, a clamp or
    a guard may have given a huge, non-finite or 0 value, which is accepted."""
    if not isinstance(out, Tensor) or tuple(out.shape) != (W.shape[0], W.shape[2]) or not out.is_floating_point():
        return
    got, W = out.detach().double().cpu(), W.detach().double().cpu()
    norms_sq = W.pow(2).sum(1)
    W_hat = W / norms_sq.sqrt().clamp_min(1e-12)[:, None, :]
    for num, mat, form in (
        (norms_sq, W_hat, "unit.mT @ W ** 2"),
        (norms_sq**2, W, "W.mT @ W ** 2"),
    ):
        den = (mat.mT @ W**2).sum(-1)
        pos = den > 1e-9
        if int(pos.sum()) < 3:
            continue
        value = num / torch.where(pos, den, torch.ones_like(den))
        if not bool(torch.isclose(got[pos], value[pos], rtol=1e-4, atol=1e-6).all()):
            continue
        rest = got[~pos]
        odd = ~torch.isfinite(rest) | (rest.abs() >= 1e6) | (rest == 0) | torch.isclose(rest, (num / den)[~pos])
        if bool(odd.all()):
            fail(
                f"{what} is reproduced by `{form}` in the denominator wherever that is positive: overlaps made from "
                "the squared entries of W, Σ_d W_di·W_dj² (·(W∘W)), where the squared overlaps (Ŵ_i·W_j)² belong",
                f"operator precedence: ** binds tighter than @, so `{form}` is `{form.replace('W ** 2', '(W ** 2)')}`. "
                "Square the product: (unit.mT @ W) ** 2, then sum over j",
                code="squared_before_matmul",
            )
