"""The leaky hard sigmoids: a backward that writes into grad_output.

A backward that edits its incoming gradient in place (`grad_output[x > 1] = 0`, `grad_output[x < 0] *= alpha`,
`grad_output.mul_(slope)`) and returns it gives the right numbers on the main check, where grad_output is a fresh
tensor autograd made for this call. It is wrong in two ordinary uses:

* `out.sum().backward()` (every loss ends in a sum or mean): autograd passes ones *expanded* from one value, so all
  entries share one memory cell and each write lands on every entry: the gradient comes back the same everywhere
  (here 0), silently;
* `torch.autograd.grad(out, x, grad_outputs=g)`: the caller's own tensor `g` comes back edited.

Both are probed after the values are right; the hint says to build a new tensor (`grad_output * slope`).
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import Tensor

from tests.checking import fail

HINT = (
    "backward must not write into grad_output (grad_output[mask] = ..., *=, .mul_(), .masked_fill_()): autograd may "
    "hand it a tensor the caller still uses, or ones expanded from a single value (out.sum().backward(): every entry "
    "is the same memory, so one write changes them all). Build a new tensor: return grad_output * slope, None "
    "(or edit grad_output.clone())"
)


def _slope(x: Tensor, alpha: float, lower: bool) -> Tensor:
    if lower:
        return torch.where(x < 0, torch.full_like(x, alpha), (x <= 1).to(x.dtype))
    return torch.where(x > 1, torch.full_like(x, alpha), (x >= 0).to(x.dtype))


def _grad(impl: Any, x0: Tensor, alpha: float, grad_output: Tensor | None) -> Tensor | None:
    x = x0.clone().requires_grad_(True)
    try:
        with warnings.catch_warnings():  # writing into an expanded tensor warns (deprecated): the check names it
            warnings.simplefilter("ignore", UserWarning)
            out = impl.apply(x, alpha)
            if grad_output is None:
                return torch.autograd.grad(out.sum(), (x,), allow_unused=True)[0]
            return torch.autograd.grad(out, (x,), grad_outputs=grad_output, allow_unused=True)[0]
    except Exception:  # the main check already ran this code: a crash here says nothing new
        return None


def grad_output_kept(impl: Any, name: str, x0: Tensor, alpha: float) -> None:
    """The caller's grad_outputs unchanged after backward, and the gradient of out.sum() (an expanded grad_output)
    equal to the slope."""
    lower = "Lower" in name
    g = torch.linspace(0.5, 1.5, x0.numel(), device=x0.device, dtype=x0.dtype).reshape(x0.shape)
    sent = g.clone()
    _grad(impl, x0, alpha, sent)
    if not torch.equal(sent, g):
        changed = int((sent != g).sum())
        fail(
            f"{name}.backward changed the grad_outputs tensor the caller passed (torch.autograd.grad(out, x, "
            f"grad_outputs=g)): {changed} of its {g.numel()} entries came back edited",
            HINT,
            code="grad_output_in_place",
        )
    grad = _grad(impl, x0, alpha, None)
    right = _slope(x0, alpha, lower)
    if isinstance(grad, Tensor) and grad.shape == right.shape and not torch.allclose(grad, right, atol=1e-6):
        seen = sorted({round(v, 4) for v in grad.flatten().tolist()})
        shown = ", ".join(f"{v:g}" for v in seen[:3]) + (", ..." if len(seen) > 3 else "")
        fail(
            f"the gradient of {name}(x).sum() is wrong (values {shown}; expected the slope: 1 on [0, 1], alpha on "
            "the leaky side, 0 on the other), though (out * g).sum() gave the right one: out.sum() hands backward a "
            "grad_output of ones expanded from a single value",
            HINT,
            code="grad_output_in_place",
        )
