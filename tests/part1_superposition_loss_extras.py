"""Loss readings of parts 1 and 2 for what a learner adds to or takes from the right loss.

* `extra_term_relation`: the learner's loss is the right one plus a penalty on `out` (λ·Σ out², λ·Σ |out|, or a term
  linear in out). The gradient with respect to `out` minus the right gradient is then c·out, c·sign(out) or a constant
  c (one c for every element), and the loss minus the right loss is the matching penalty: both are checked, so nothing
  is named by chance.
* `repeated_division_relation`: the loss and its gradient are exactly the right ones divided once more by the batch
  size, the number of features or both (a mean, then a division by the same count): the reduction is already a mean.
* `output_transform_mutants`: the output transformed inside the loss (ReLU(out), |out|, out clamped at 0) where it
  enters as it is: the forward pass already ends in a ReLU.
"""

from __future__ import annotations

import torch
from torch import Tensor

from tests.loss_penalties import difference_relation
from tests.part1_superposition_clipping import clipped_mutants

RIGHT = "Σ over instances of the mean over (batch, feats) of importance · (target - out)²"


def _right(out: Tensor, target: Tensor, imp: Tensor) -> tuple[float, Tensor]:
    y = out.detach().double().cpu().requires_grad_()
    t, w = target.detach().double().cpu(), imp.detach().double().cpu()
    loss = (w * (t - y) ** 2).mean(dim=(0, 2)).sum()
    (g,) = torch.autograd.grad(loss, y)
    return float(loss.detach()), g


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-5 + 1e-4 * abs(b)


def extra_term_relation(
    loss: Tensor, grad: Tensor | None, out: Tensor, target: Tensor, imp: Tensor
) -> tuple[str, str] | None:
    """(code, hint) when loss - right is a penalty on `out` whose gradient is grad - right's gradient (see module)."""
    if grad is None or grad.shape != out.shape or loss.numel() != 1 or loss.device.type == "meta":
        return None
    right, g_right = _right(out, target, imp)
    o, g = out.detach().double().cpu(), grad.detach().double().cpu()
    if not bool(torch.isfinite(g).all()):
        return None
    r, diff = g - g_right, float(loss.detach().double().cpu()) - right
    scale = float(g_right.abs().max())
    if float(r.abs().max()) <= 1e-4 * scale:
        return None  # the gradient is right: another reading names it
    n = o.numel()
    readings = (
        ("out²", o, lambda c: c / 2 * float((o**2).sum()), "λ·out.pow(2).mean() (an L2 penalty on the output)", n / 2),
        ("|out|", o.sign(), lambda c: c * float(o.abs().sum()), "λ·out.abs().mean() (an L1 penalty on the output)", n),
        ("out", torch.ones_like(o), lambda c: c * float(o.sum()), "λ·out.mean() (a term linear in the output)", n),
    )
    for name, basis, penalty, what, per_mean in readings:
        c = float((r * basis).sum() / (basis * basis).sum())
        if abs(c) < 1e-8 or not bool(((r - c * basis).abs() <= 1e-4 * scale + 1e-3 * abs(c)).all()):
            continue
        if _close(diff, penalty(c)):
            lam = c * per_mean
            return "extra_term", (
                f"your loss is the right one plus a term in {name}: loss - right = {diff:.4g}, and its gradient with "
                f"respect to `out` adds {name}'s gradient times one constant, as {what} with λ ≈ {lam:.3g} gives. "
                f"The loss has no penalty term: {RIGHT}"
            )
    return None


def repeated_division_relation(
    loss: Tensor, grad: Tensor | None, out: Tensor, target: Tensor, imp: Tensor
) -> tuple[str, str] | None:
    """(code, hint) when the loss and its gradient are the right ones divided again by the batch size and/or n_feats."""
    if grad is None or grad.shape != out.shape or loss.numel() != 1 or loss.device.type == "meta":
        return None
    right, g_right = _right(out, target, imp)
    value, g = float(loss.detach().double().cpu()), grad.detach().double().cpu()
    B, _, F = out.shape
    for count, what in (
        (B, f"the batch size ({B}): a mean over `batch`, then a division by batch.shape[0] (or len(batch)) again"),
        (F, f"the number of features ({F}): a mean over `feats`, then a division by n_features again"),
        (B * F, f"the number of (batch, feats) elements ({B * F}): a mean, then a division by their count again"),
    ):
        if count > 1 and _close(value, right / count) and torch.allclose(g, g_right / count, rtol=1e-3, atol=1e-9):
            return "divided_twice", (
                f"your loss and its gradient are the right ones divided once more by {what}. The mean already "
                f"divides by it: {RIGHT}"
            )
    return None


def output_transform_mutants(out: Tensor, target: Tensor, imp: Tensor) -> list[tuple[str, str, Tensor]]:
    """The loss with the output transformed before the error (code out_transformed)."""

    def loss(y: Tensor) -> Tensor:
        return (imp * (target - y) ** 2).mean(dim=(0, 2)).sum()

    as_is = "the output enters the loss as it is, (target - out)² (the forward pass already applies its ReLU)"
    return [
        ("out_transformed", f"ReLU(out) (out.clamp(min=0)) is used in the loss: {as_is}", loss(out.clamp(min=0))),
        ("out_transformed", f"|out| is used in the loss: {as_is}", loss(out.abs())),
    ]


def clip_and_transform_mutants(out: Tensor, target: Tensor, imp: Tensor) -> list[tuple[str, str, Tensor]]:
    """Part 1's loss catalogue entries for a clip inside the error and for a transformed output."""
    return clipped_mutants(out, target, imp) + output_transform_mutants(out, target, imp)


def more_loss_relations(
    loss: Tensor, grad: Tensor | None, out: Tensor, target: Tensor, imp: Tensor
) -> tuple[str, str] | None:
    """Part 1's last loss relations: another penalty of the difference, a term added, a count divided by twice."""
    return (
        difference_relation(loss, grad, out, target, imp)
        or extra_term_relation(loss, grad, out, target, imp)
        or repeated_division_relation(loss, grad, out, target, imp)
    )
