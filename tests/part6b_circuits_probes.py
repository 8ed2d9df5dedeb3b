"""Behavioural probes for part 6b's checkers: two losses in each other's places, and NaN influences told apart by a
probe (an elementwise reciprocal for the matrix inverse, or unguarded row sums)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from tests.checking import fail


def keys_swapped(got: dict[str, float], exp: dict[str, float], close: Callable[[float, float], bool]) -> None:
    """Two of the losses each hold the other's expected value (and those two values differ): their keys are swapped."""
    names = ("clean", "replaced", "zero_ablated")
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            if close(exp[a], exp[b]) or close(got[a], exp[a]):
                continue
            if close(got[a], exp[b]) and close(got[b], exp[a]):
                fail(
                    f"out[{a!r}] = {got[a]:.5f} and out[{b!r}] = {got[b]:.5f}: each is the other's expected loss "
                    f"(expected {exp[a]:.5f} and {exp[b]:.5f})",
                    f"the values of {a!r} and {b!r} are swapped: check which run's loss goes under which key",
                    code="keys_swapped",
                )


def influence_nan(out: Tensor, A: Tensor, weights: Tensor, impl: Callable) -> None:
    """NaN in the influence. Both an unguarded row normalisation (0 / 0 in rows without inputs) and an elementwise
    1 / (I - Â) (1 / 0 = inf off the diagonal, then inf · 0 with the zero logit weights) give NaN at every node
    here, so a probe tells them apart: with every logit weight positive, the elementwise reciprocal gives +inf
    (no 0 · inf left) where the unguarded division still gives NaN."""
    eye = torch.eye(len(A), device=A.device, dtype=A.dtype)
    a_abs = A.abs()
    guarded = a_abs / a_abs.sum(-1, keepdim=True).clamp_min(1e-12)
    ones = torch.ones_like(weights)
    elementwise = ones @ (1 / (eye - guarded) - eye)
    try:
        probe = torch.as_tensor(impl(A.clone(), ones.clone())).detach()
    except Exception:
        probe = None
    reciprocal = (
        "1 / (I - Â) (or (I - Â) ** -1) is the elementwise reciprocal: the zeros off the diagonal become inf, and inf "
        "· 0 gives NaN; the series I + Â + Â² + … sums to the MATRIX inverse, torch.linalg.inv(I - Â) (or "
        "torch.linalg.solve)"
    )
    rows = "rows with no incoming edges sum to 0: clamp the row sums before dividing (clamp_min(1e-12))"
    if (
        probe is not None
        and probe.shape == elementwise.shape
        and not probe.isnan().any()
        and torch.equal(probe.isinf(), elementwise.isinf())
        and elementwise.isinf().any()
    ):
        fail(
            "the influence contains NaN; with every logit weight 1 it is +inf at the nodes where an elementwise "
            "1 / (I - Â) is",
            reciprocal,
            code="elementwise_inverse",
        )
    fail(
        f"the influence contains NaN (at nodes {out.isnan().nonzero().flatten().tolist()})",
        f"possible causes: {rows}; or {reciprocal}",
        code="zero_rows",
    )
