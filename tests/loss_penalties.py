"""Name a loss that penalises each difference otherwise than by its square: L1, Huber / smooth L1, a root of the mean
square, a higher power.

The importance-weighted loss Σ_inst mean_{batch, feats} I · (target - out)² squares each difference. A learner who
writes `F.smooth_l1_loss(out, target, reduction="none")`, `F.huber_loss`, `(target - out).abs()` or
`((target - out) ** 2).mean().sqrt()` weights the same differences with another penalty. `penalty_relation` recomputes
the loss with each such penalty (the same importance weights and reductions) and names the penalty only when both the
learner's scalar and its gradient with respect to `out` (a [batch inst feats] fingerprint) match it. A Huber whose
threshold no difference crosses is a constant multiple of the squared error, so it is left to the factor readings.
Parts 1 and 2 share it (their targets differ: batch, |batch|).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from tests.loss_square_of_mean import close, square_of_mean_relation, wrong_loss_inputs

_SQUARE = "importance · ({t} - out)², the square of each difference (F.mse_loss(..., reduction='none'))"


def _huber(beta: float, scale: float) -> Callable[[Tensor], Tensor]:
    return lambda d: scale * torch.where(d.abs() < beta, 0.5 * d**2 / beta, d.abs() - 0.5 * beta)


def _penalties() -> list[tuple[str, str, Callable[[Tensor], Tensor], float | None]]:
    """(code, name, elementwise penalty of d, threshold or None)."""
    out = [("not_squared", "the absolute difference |{t} - out| (L1, F.l1_loss)", lambda d: d.abs(), None)]
    for beta in (1.0, 0.5, 2.0, 0.1):
        out.append(
            (
                "huber_loss",
                f"the Huber / smooth-L1 penalty with threshold {beta:g} (F.smooth_l1_loss(beta={beta:g})"
                + (", F.huber_loss" if beta == 1.0 else "")
                + f": ½ d²{f' / {beta:g}' if beta != 1 else ''} for |d| < {beta:g}, linear beyond)",
                _huber(beta, 1.0),
                beta,
            )
        )
        if beta != 1.0:
            out.append(
                (
                    "huber_loss",
                    f"the Huber penalty with delta {beta:g} (F.huber_loss(delta={beta:g}): ½ d² for |d| < {beta:g}, "
                    "linear beyond)",
                    _huber(beta, beta),
                    beta,
                )
            )
    out += [
        ("error_power", "the cube of the absolute difference, |{t} - out|³", lambda d: d.abs() ** 3, None),
        ("error_power", "the fourth power of the difference, ({t} - out)⁴", lambda d: d**4, None),
    ]
    return out


def _reductions() -> list[tuple[str, Callable[[Tensor, Tensor], Tensor]]]:
    """(description, (weighted penalty [batch inst feats], unweighted squares) -> scalar)."""
    return [
        ("", lambda e: e.mean(dim=(0, 2)).sum()),
        (" averaged over the instances too (a mean over everything)", lambda e: e.mean()),
    ]


def penalty_relation(
    loss: Tensor, grad: Tensor | None, out: Tensor, target: Tensor, imp: Tensor, target_name: str = "target"
) -> tuple[str, str] | None:
    """(code, hint) when the learner's loss and its gradient are those of another penalty of each difference (see
    the module docstring); None otherwise, or when the gradient is unknown."""
    inputs = wrong_loss_inputs(loss, grad, out, target, imp)
    if inputs is None:
        return None
    value, o, t, w, g, right = inputs
    biggest = float((t - o).abs().max())
    candidates = [
        (code, name, lambda y, f=f, r=r: r(w * f(t - y)), where)
        for code, name, f, threshold in _penalties()
        if threshold is None or biggest > threshold  # else a constant multiple of the square: the factor readings
        for where, r in _reductions()
    ]
    per_inst = lambda y: (w * (t - y) ** 2).mean(dim=(0, 2))
    candidates += [
        (
            "root_of_loss",
            "each instance's mean squared difference, square-rooted (an RMS)",
            lambda y: per_inst(y).sqrt().sum(),
            "",
        ),
        (
            "root_of_loss",
            "the squared difference, the whole loss square-rooted (an RMS)",
            lambda y: per_inst(y).sum().sqrt(),
            "",
        ),
    ]
    for code, name, fn, where in candidates:
        v = float(fn(o))
        if not close(value, v) or close(v, right):
            continue
        y = o.clone().requires_grad_()
        (gy,) = torch.autograd.grad(fn(y), y)
        if torch.allclose(g, gy, rtol=1e-3, atol=1e-6 * (1 + float(gy.abs().max()))):
            t_name = target_name
            return code, (
                f"your loss and its gradient with respect to `out` are those of importance · "
                f"{name.format(t=t_name)}{where}: your loss penalises each difference otherwise than by its square. "
                f"The loss is {_SQUARE.format(t=t_name)}, then the mean over (batch, feats) and the sum over instances"
            )
    return None


def difference_relation(
    loss: Tensor, grad: Tensor | None, out: Tensor, target: Tensor, imp: Tensor, target_name: str = "target"
) -> tuple[str, str] | None:
    """The readings of how each difference enters the loss, for parts 1 and 2: reduced before squaring (the square
    of the mean), or penalised otherwise than by its square (L1, Huber, an RMS, a higher power)."""
    return square_of_mean_relation(loss, grad, out, target, imp, target_name) or penalty_relation(
        loss, grad, out, target, imp, target_name
    )
