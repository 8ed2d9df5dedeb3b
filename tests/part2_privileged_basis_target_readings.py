"""NeuronComputationModel.calculate_loss: which elementwise function of the batch the learner's target is.

A loss of the right form, Σ_inst mean_(batch, feats) I (t - out)², has the gradient 2 I (out - t) / (B · feats) with
respect to `out`, so the target it regresses onto is t = out - grad · B · feats / (2 I). When that t also gives the
learner's loss value (the form is right: only the target differs), the target is read off and compared with the
elementwise functions of the batch a learner might write (x, -x, ReLU(x), x², sign(x), (x + 1) / 2, ...) and with
|batch| centred over the batch; when none fits, the section's other diagnoses (a target reduced over an axis, ...)
speak.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn.functional import relu

FUNCTIONS = {
    "batch itself (x)": lambda x: x,
    "-batch (-x)": lambda x: -x,
    "ReLU(batch)": relu,
    "ReLU(-batch) (the negative part only)": lambda x: relu(-x),
    "-|batch|": lambda x: -x.abs(),
    "batch² (x²)": lambda x: x**2,
    "-batch²": lambda x: -(x**2),
    "sign(batch)": torch.sign,
    "|sign(batch)| (1 where a feature is present)": lambda x: x.sign().abs(),
    "√|batch|": lambda x: x.abs().sqrt(),
    "batch · |batch|": lambda x: x * x.abs(),
    "2 |batch|": lambda x: 2 * x.abs(),
    "|batch| / 2": lambda x: x.abs() / 2,
    "0 (no target)": torch.zeros_like,
    "(batch + 1) / 2 (batch rescaled from [-1, 1] to [0, 1])": lambda x: (x + 1) / 2,
    "|batch| - |batch|.mean(0) (centred over the batch)": lambda x: x.abs() - x.abs().mean(0, keepdim=True),
    "|batch - batch.mean(0)| (the batch centred before the absolute value)": lambda x: (x - x.mean(0)).abs(),
    "|batch| / |batch|.amax(0) (scaled to a maximum of 1 over the batch)": lambda x: x.abs() / x.abs().amax(0),
}
# Targets with a code of their own (the rest are `target_function`).
CODES = {
    "(batch + 1) / 2 (batch rescaled from [-1, 1] to [0, 1])": "target_rescaled",
    "|batch| - |batch|.mean(0) (centred over the batch)": "target_centred",
    "|batch - batch.mean(0)| (the batch centred before the absolute value)": "target_centred",
    "|batch| / |batch|.amax(0) (scaled to a maximum of 1 over the batch)": "target_rescaled",
}


def target_relation(
    loss: Tensor, grad: Tensor | None, out: Tensor, target: Tensor, imp: Tensor, batch: Tensor | None
) -> tuple[str, str] | None:
    """(code, hint) when the loss is Σ_inst mean I (t - out)² with an elementwise target t other than |batch|."""
    if grad is None or batch is None or tuple(grad.shape) != tuple(out.shape) or out.dim() != 3:
        return None
    B, _, n_feats = out.shape
    g, y, x, w = (t.detach().double().cpu() for t in (grad, out, batch, imp))
    implied = y - g * B * n_feats / (2 * w)
    if not bool(torch.isfinite(implied).all()) or not bool(torch.isfinite(loss).all()):
        return None
    value = float((w * (implied - y) ** 2).mean(dim=(0, 2)).sum())
    if abs(float(loss) - value) > 1e-4 * (1 + abs(value)):  # another form (a reduction, a weight): not this reading
        return None
    close = lambda a, b: bool(torch.allclose(a, b, rtol=1e-4, atol=1e-4))
    if close(implied, x.abs()):
        return None
    for name, f in FUNCTIONS.items():
        if close(implied, f(x)):
            return CODES.get(name, "target_function"), (
                f"your loss and its gradient with respect to `out` are those of I · (t - out)² with the target t = "
                f"{name}, not |batch|: the model learns to compute absolute values, so the target is batch.abs()"
            )
    return smoothed_abs_relation(implied, x)  # else None: a target built otherwise (a norm, a mean) keeps its own


def smoothed_abs_relation(implied: Tensor, x: Tensor) -> tuple[str, str] | None:
    """(code, hint) when the implied target is |batch| away from 0 but not 0 where batch is 0: a smoothed or
    offset |x| (sqrt(x² + ε), |x| + ε, ...), the family of "a differentiable |x|"."""
    dev = implied - x.abs()
    absent, far = x == 0, x.abs() > 0.5
    if not bool(absent.any()) or not bool(far.any()):
        return None
    at_zero, dev_far = dev[absent], float(dev[far].abs().max())
    c = float(at_zero.mean())
    if abs(c) < 1e-3 or float((at_zero - c).abs().max()) > 1e-4 * (1 + abs(c)):
        return None  # 0 (or not one value) where the feature is absent: not an offset at 0
    if float((dev - c).abs().max()) <= 1e-4 * (1 + abs(c)):
        shape = f"|batch| {'+' if c > 0 else '-'} {abs(c):.3g} everywhere (an ε added to the target)"
    elif dev_far <= 0.25 * abs(c):
        shape = f"≈ |batch| away from 0 (within {dev_far:.2g} where |batch| > 0.5) but {c:.3g} where batch = 0"
        shape += f": a smoothed |x| such as sqrt(x² + ε) (ε ≈ {c * c:.2g} if so)" if c > 0 else ""
    else:
        return None
    return "target_smoothed_abs", (
        f"your loss and its gradient with respect to `out` are those of I · (t - out)² with a target t {shape}, "
        "not |batch|: an absent feature's target is exactly 0. The target is data, never differentiated, so |x| "
        "needs no smoothing or ε: use batch.abs()"
    )
