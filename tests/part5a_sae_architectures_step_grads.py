"""Part 5a: threshold-gradient slips of the step functions (Heaviside, JumpReLU) that a region reading would
misname, each told by recomputing the reference gradient with the one slip in it:

* grad_output reduced to one number (`g.sum()` / `g.mean()`) instead of each entry's own grad_output: inside the
  rectangle the kernel is constant, so the wrong entries share one value and read like a clamp;
* an extra ∓1[x > θ] · grad_output term (the derivative of ReLU(x - θ) w.r.t. θ mixed into JumpReLU's);
* JumpReLU's factor θ pooled (mean, sum, max) over every axis or one axis instead of each element's own θ.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from tests.checking import fail

_POOLS: tuple[tuple[str, Callable[[Tensor, tuple[int, ...] | None], Tensor]], ...] = (
    ("mean", lambda t, dims: t.mean() if dims is None else t.mean(dims, keepdim=True)),
    ("sum", lambda t, dims: t.sum() if dims is None else t.sum(dims, keepdim=True)),
    ("max", lambda t, dims: t.max() if dims is None else t.amax(dims, keepdim=True)),
)


def _close(a: Tensor, b: Tensor) -> bool:
    return a.shape == b.shape and torch.allclose(a.to(b.dtype), b, rtol=1e-4, atol=1e-5)


def theta_grad_slips(got: Tensor, x: Tensor, th: Tensor, g: Tensor, bw: float, dth: Callable, name: str) -> None:
    """Fail with a named diagnosis when the learner's threshold gradient `got` is the reference (`dth(x, th, bw)`
    per unit grad_output, `g` the upstream gradient) with one of the slips in the module docstring."""
    got = got.detach()
    kernel = dth(x, th, bw)
    if _close(got, kernel * g):
        return
    for how, total in (("sum", g.sum()), ("mean", g.mean())):
        if _close(got, kernel * total):
            fail(
                f"the gradient of {name} with respect to threshold is the right kernel times one number, "
                f"grad_output.{how}() = {float(total):.4g}, at every position",
                f"grad_output reduced over everything (g.{how}()): each entry uses its own grad_output, "
                "-(factor/ε) · K((x - θ)/ε) · grad_output elementwise",
                code="grad_output_reduced",
            )
    step = (x > th).to(g.dtype) * g
    for sign, label in ((-1, "an extra -1[x > θ] · grad_output"), (1, "an extra +1[x > θ] · grad_output")):
        if step.any() and _close(got, kernel * g + sign * step):
            fail(
                f"the gradient of {name} with respect to threshold is the expected one plus {label[9:]} wherever x > θ",
                f"{label} term: the derivative of ReLU(x - θ) with respect to θ, which {name}'s θ-gradient does not "
                "have (the output is x, not x - θ, above the threshold): only -(factor/ε) · K((x - θ)/ε) · "
                "grad_output",
                code="relu_theta_term",
            )
    if name != "JumpReLU":
        return
    per_theta = kernel / th  # the factor θ divided out (θ > 0 here)
    for how, pool in _POOLS:
        for dims in (None, *((d,) for d in range(th.dim()))):
            pooled = pool(th, dims)
            if torch.equal(pooled.expand_as(th), th) or not _close(got, per_theta * pooled * g):
                continue
            where = "over every element" if dims is None else f"over axis {dims[0]} (size {th.shape[dims[0]]})"
            fail(
                f"the gradient of {name} with respect to threshold uses θ.{how}() {where} as its factor where each "
                "element's own θ belongs",
                f"the factor is each element's own threshold, -(θ/ε) · K((x - θ)/ε) · grad_output elementwise: "
                f"don't pool θ ({how} {where}) in backward",
                code="theta_pooled",
            )
