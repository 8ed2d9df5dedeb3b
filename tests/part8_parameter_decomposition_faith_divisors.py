"""Part 8, faithfulness_loss: a divisor that is not the count N.

* `relative_errors`: the squared error divided by the size of W itself, ‖W_l‖² (a relative error), per matrix
  (averaged or summed over the matrices) or over all of them, or the relative Frobenius error ‖Δ‖ / ‖W‖;
* `uv_count`: N taken from another tensor's size (V_l's C · d_in, U_l's d_out · C, both, with or without the
  instances). On the main inputs (C = 7) Σ_l C · d_in = 98 is 2N, the value a doubled N or a ½ MSE factor gives,
  so the learner's function runs once more with C = 5: a count of U's or V's entries follows C, N does not.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from tests import part8_parameter_decomposition_probes as probes
from tests.checking import fail

Mistakes = list[tuple[str, str, Tensor]]
PROBE_C = 5  # Σ C·d_in = 70, Σ d_out·C = 80: neither is 2N = 98 nor N = 49


def relative_errors(weights: list[Tensor], U: list[Tensor], V: list[Tensor]) -> Mistakes:
    """The squared error relative to ‖W_l‖²: per matrix then averaged or summed over the matrices (and the
    instances), or over everything at once; and the relative Frobenius error (not squared). Per instance over all
    matrices together is the catalogue's `weight_norm`."""
    with torch.no_grad():
        se = torch.stack([(W - u @ v).pow(2).sum((-2, -1)) for W, u, v in zip(weights, U, V, strict=True)])
        ww = torch.stack([W.pow(2).sum((-2, -1)) for W in weights])  # [L inst]
        rel = se / ww
    n = sum(W[0].numel() for W in weights)
    rule = (
        f"the loss divides by the count N = {n} (the entries of one instance's matrices W_l), not by the size of W: "
        "Σ_inst (1/N) Σ_l ‖W_l - U_l V_l‖²"
    )
    seen = {
        "per matrix, averaged over the matrices": rel.mean(0).sum(),
        "per matrix, summed over the matrices": rel.sum(0).sum(),
        "per matrix, averaged over the matrices and the instances": rel.mean(),
        "over everything at once (Σ ‖Δ‖² / Σ ‖W‖²)": se.sum() / ww.sum(),
        "not squared (‖Δ_l‖ / ‖W_l‖, the relative Frobenius error), averaged over the matrices": (
            rel.sqrt().mean(0).sum()
        ),
    }
    return [
        (
            "relative_error",
            f"your value is the squared error divided by ‖W_l‖², the size of W itself (a relative error, {how}): "
            + rule,
            value,
        )
        for how, value in seen.items()
    ]


def _uv_counts(weights: list[Tensor], U: list[Tensor]) -> dict[str, int]:
    m, C = weights[0].shape[0], [u.shape[-1] for u in U]
    d_out, d_in = [W.shape[-2] for W in weights], [W.shape[-1] for W in weights]
    v = sum(c * i for c, i in zip(C, d_in, strict=True))
    u = sum(o * c for o, c in zip(d_out, C, strict=True))
    return {
        "the entries of V_l (C · d_in, V[l][0].numel())": v,
        "the entries of U_l (d_out · C, U[l][0].numel())": u,
        "the entries of U_l and V_l": u + v,
        f"the entries of V_l over all {m} instances (V[l].numel())": m * v,
        f"the entries of U_l over all {m} instances (U[l].numel())": m * u,
        f"the entries of U_l and V_l over all {m} instances": m * (u + v),
    }


def _divisor(fn: Callable, weights: list[Tensor], U: list[Tensor], V: list[Tensor]) -> float | None:
    """Σ ‖W - U V‖² / fn(...): the count the learner's loss divides the squared error by, or None."""
    try:
        with torch.no_grad():
            loss = fn(weights, [u.clone() for u in U], [v.clone() for v in V])
        loss = float(torch.as_tensor(loss).detach().sum())
    except Exception:  # a probe: the main check reports the learner's own errors
        return None
    total = float(sum((W - u @ v).pow(2).sum() for W, u, v in zip(weights, U, V, strict=True)))
    return total / loss if loss > 0 and total > 0 and loss < float("inf") else None


def uv_count(fn: Callable, loss: Tensor, right: Tensor, weights: list[Tensor], U: list[Tensor], V: list[Tensor]):
    """Fail naming the count when the loss is the squared error divided by a count of U's or V's entries, seen on
    the main inputs and again on inputs with C = 5 (the count follows C, N does not); otherwise return."""
    if torch.allclose(loss, right.to(loss.dtype), rtol=1e-4, atol=1e-5):
        return
    n = sum(W[0].numel() for W in weights)
    close = lambda d, c: d is not None and abs(d - c) <= 1e-4 * c
    d = n * float(right) / float(loss) if float(loss) > 0 else None
    named = [(what, c) for what, c in _uv_counts(weights, U).items() if close(d, c)]
    if not named:
        return
    m = weights[0].shape[0]
    U2 = [probes._randn(m, W.shape[-2], PROBE_C, seed=70 + k, scale=0.5) for k, W in enumerate(weights)]
    V2 = [probes._randn(m, PROBE_C, W.shape[-1], seed=80 + k, scale=0.5) for k, W in enumerate(weights)]
    U2, V2 = [u.to(loss.device) for u in U2], [v.to(loss.device) for v in V2]
    d2, counts2 = _divisor(fn, weights, U2, V2), _uv_counts(weights, U2)
    found = [(what, c) for what, c in named if close(d2, counts2[what])]
    if not found:
        return  # the divisor doesn't follow C: a doubled N or a ½ factor, named by the catalogue
    what, c = found[0]
    fail(
        f"faithfulness_loss divides the squared error by {c} on the check's inputs (C = {U[0].shape[-1]}) and by "
        f"{counts2[what]} on the same W with C = {PROBE_C}: the divisor changes with C, where N = {n} does not",
        f"your value is the squared error divided by {c}: {what}, another tensor's size; N = {n} is the number of "
        "entries of one instance's weight matrices W_l (Σ_l d_out · d_in, weights[l][0].numel()), whatever C is",
        code="wrong_count",
    )
