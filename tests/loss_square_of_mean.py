"""Name a loss that averages the error before squaring it: the square of the mean where the mean of the square belongs.

The importance-weighted loss Σ_inst mean_{batch, feats} I · (target - out)² squares each error first. A learner who
writes `(I * (target - out).mean(0) ** 2).mean(-1).sum()` takes the mean (or sum) of the signed difference over
an axis first, so errors of opposite sign cancel. `square_of_mean_relation` recomputes the loss with the difference
reduced over `batch`, `feats` or both (a mean or a sum) before the square, the other reductions as they should be,
and names the formula only when both the learner's scalar and its gradient with respect to `out` (a
[batch inst feats] fingerprint) match it: a scalar alone could match by chance.
"""

from __future__ import annotations

import itertools

import torch
from torch import Tensor

_AXES = {"batch": 0, "feats": 2}


def _loss(out: Tensor, target: Tensor, imp: Tensor, axes: tuple[str, ...], op: str) -> Tensor:
    d = target - out  # [batch inst feats]
    dims = tuple(_AXES[a] for a in axes)
    d = d.mean(dims, keepdim=True) if op == "mean" else d.sum(dims, keepdim=True)
    return (imp * d**2).mean(dim=(0, 2)).sum()  # the broadcast keeps the other axes' means as they are


def close(a: float, b: float) -> bool:
    """Two loss values equal within float32 rounding of a mean over thousands of terms."""
    return abs(a - b) <= 1e-5 + 1e-4 * abs(b)


def wrong_loss_inputs(
    loss: Tensor, grad: Tensor | None, out: Tensor, target: Tensor, imp: Tensor
) -> tuple[float, Tensor, Tensor, Tensor, Tensor, float] | None:
    """(value, out, target, importance, gradient, right value), in float64 on the CPU, for a scalar loss that is
    wrong and whose gradient with respect to `out` is known; None otherwise (nothing for a reading to explain)."""
    if grad is None or loss.numel() != 1 or loss.device.type == "meta" or tuple(grad.shape) != tuple(out.shape):
        return None
    value = float(loss.detach().double().cpu())
    o, t, w = out.detach().double().cpu(), target.detach().double().cpu(), imp.detach().double().cpu()
    right = float((w * (t - o) ** 2).mean(dim=(0, 2)).sum())
    return None if close(value, right) else (value, o, t, w, grad.detach().double().cpu(), right)


def square_of_mean_relation(
    loss: Tensor, grad: Tensor | None, out: Tensor, target: Tensor, imp: Tensor, target_name: str = "target"
) -> tuple[str, str] | None:
    """('square_of_mean', hint) when the learner's loss and its gradient are those of the loss whose difference was
    reduced before squaring (see the module docstring); None otherwise, or when the gradient is unknown."""
    inputs = wrong_loss_inputs(loss, grad, out, target, imp)
    if inputs is None:
        return None
    value, o, t, w, g, right = inputs
    fits = []
    for n_axes, op in itertools.product((1, 2), ("mean", "sum")):
        for axes in itertools.combinations(_AXES, n_axes):
            v = float(_loss(o, t, w, axes, op))
            if not close(value, v) or close(v, right):
                continue
            y = o.clone().requires_grad_()
            (gy,) = torch.autograd.grad(_loss(y, t, w, axes, op), y)
            if torch.allclose(g, gy, rtol=1e-3, atol=1e-6 * (1 + float(gy.abs().max()))):
                over = " and ".join(f"`{a}`" for a in axes)
                fits.append(f"the {op} over {over} of ({target_name} - out) squared")
    if not fits:
        return None
    return "square_of_mean", (
        f"your loss and its gradient with respect to `out` are those of importance · ({' | or | '.join(fits)}): "
        "the square of the mean where the mean of the square belongs. Averaging the signed differences first lets "
        f"errors of opposite sign cancel. Square each error first, importance · ({target_name} - out)², then take "
        "the mean over (batch, feats) and the sum over instances"
    )
