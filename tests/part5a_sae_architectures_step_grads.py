"""Part 5a: threshold-gradient slips of the step functions (Heaviside, JumpReLU) that a region reading would
misname, each told by recomputing the reference gradient with the one slip in it:

* grad_output reduced to one number (`g.sum()` / `g.mean()`) instead of each entry's own grad_output: inside the
  rectangle the kernel is constant, so the wrong entries share one value and read like a clamp;
* an extra ∓1[x > θ] · grad_output term (the derivative of ReLU(x - θ) w.r.t. θ mixed into JumpReLU's);
* JumpReLU's factor θ pooled (mean, sum, max) over every axis or one axis instead of each element's own θ;
* the window one-sided (the rectangle compares u with 1/2, not |u|) or its width scaled by θ (ε·θ, ε/θ), the
  slope -(factor/ε) unchanged: the reference recomputed with that window;
* the whole gradient times 2 at ε and at 4ε alike (so not a power of ε): the half-width ε/2 divides the slope
  where ε belongs;
* the whole gradient times a per-element quantity (1/θ, θ, θ², 1/θ², x, 1/x, x/θ, θ/x, exp(θ)): the element-wise
  ratio got / expected over the window read back and named when exactly one such quantity reproduces it.

`dtype_kept` names a forward whose output dtype is not x's (float64 and float16 probes; the checker's own float32
inputs can't show a `.float()`).
`backward_error` names what autograd rejected in a learner's backward (a gradient count or shape, an in-place edit).
"""

from __future__ import annotations

import traceback
from collections.abc import Callable

import torch
from torch import Tensor

from tests import part5a_sae_architectures_readbacks as RB
from tests.checking import fail, inplace_failure
from tests.learner_errors import _is_learner_frame

_POOLS: tuple[tuple[str, Callable[[Tensor, tuple[int, ...] | None], Tensor]], ...] = (
    ("mean", lambda t, dims: t.mean() if dims is None else t.mean(dims, keepdim=True)),
    ("sum", lambda t, dims: t.sum() if dims is None else t.sum(dims, keepdim=True)),
    ("max", lambda t, dims: t.max() if dims is None else t.amax(dims, keepdim=True)),
)


# (name, quantity, a likely cause): the learner's θ-gradient is the expected one times the quantity
_RATIOS: tuple[tuple[str, Callable[[Tensor, Tensor], Tensor], str], ...] = (
    ("divided by θ", lambda x, th: 1 / th, "the chain rule of θ = exp(log_threshold) applied backwards"),
    ("multiplied by θ", lambda x, th: th, "the chain rule of θ = exp(log_threshold) applied inside backward"),
    ("multiplied by θ²", lambda x, th: th * th, ""),
    ("divided by θ²", lambda x, th: 1 / (th * th), ""),
    ("multiplied by x", lambda x, th: x, "x (the input) used as a factor"),
    ("divided by x", lambda x, th: 1 / x, "a division by the input x"),
    ("multiplied by x/θ", lambda x, th: x / th, ""),
    ("multiplied by θ/x", lambda x, th: th / x, ""),
    ("multiplied by exp(θ)", lambda x, th: th.exp(), "θ exponentiated again in backward"),
)


def _close(a: Tensor, b: Tensor) -> bool:
    return a.shape == b.shape and torch.allclose(a.to(b.dtype), b, rtol=1e-4, atol=1e-5)


def theta_grad_slips(
    got: Tensor, x: Tensor, th: Tensor, g: Tensor, bw: float, dth: Callable, name: str, impl: type | None = None
) -> None:
    """Fail with a named diagnosis when the learner's threshold gradient `got` is the reference (`dth(x, th, bw)`
    per unit grad_output, `g` the upstream gradient) with one of the slips in the module docstring (`impl`, the
    learner's Function, is re-run at 4ε to tell a constant factor from a power of ε)."""
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
    RB.upstream_transformed(got, kernel, g, name)
    RB.theta_centre_pooled(got, x, th, g, bw, dth, name)
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
    _window_variants(got, x, th, g, bw, dth, name)
    if impl is not None:
        _constant_factor(impl, got, x, th, g, bw, dth, name)
    _ratio(got, kernel * g, x, th, name)
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


def zero_theta_grad(
    impl: type, got: Tensor, x: Tensor, th: Tensor, g: Tensor, bw: float, dth: Callable, name: str
) -> None:
    """Fail when the θ-gradient is zero everywhere although backward returned a tensor for θ (not None), listing
    the possible causes; the empty window of half-width ε // 2 (floor division) is checked as a candidate."""
    got, kernel = got.detach(), dth(x, th, bw)
    if (got != 0).any() or not (kernel * g).any():
        return
    xs, ths = x.clone().requires_grad_(True), th.clone().requires_grad_(True)
    try:
        (grad,) = torch.autograd.grad((impl.apply(xs, ths, bw) * g).sum(), (ths,), allow_unused=True)
    except RuntimeError:
        return
    if grad is None:
        return  # None for θ: the catalogue's "not None or zeros" says it
    causes = [
        "backward returned zeros (torch.zeros_like) for θ",
        "the θ-gradient multiplied by a mask that is never true",
    ]
    floor = ((x - th).abs() < bw // 2).to(g.dtype) * kernel * g  # the window of half-width ε // 2
    if _close(got, floor):
        causes.insert(
            0, f"an empty window: ε // 2 is 0 for ε < 2 (floor division, here {bw} // 2 = {bw // 2}); use ε / 2"
        )
    fail(
        f"the gradient of {name} with respect to threshold is zero at every position although backward returned a "
        "tensor for θ (not None); the expected one is non-zero wherever |x - θ| < ε/2",
        "possible causes: " + "; ".join(causes) + ". The θ-gradient is -(factor/ε) · K((x - θ)/ε) · grad_output, "
        "K = 1 on the window |x - θ| < ε/2",
        code="threshold_grad_zero",
    )


def _ratio(got: Tensor, want: Tensor, x: Tensor, th: Tensor, name: str) -> None:
    """Fail when `got` is `want` times exactly one quantity of `_RATIOS`, element by element (zero where `want` is:
    outside the window), naming it with the range of the ratio read back over the window."""
    inside = want != 0
    if not inside.any():
        return
    # a factor F of -(F/ε)·K that `DG.theta_factor` names (checked at two bandwidths) is left to it
    theirs = ("multiplied by θ", "multiplied by x") if name == "Heaviside" else ("divided by θ", "multiplied by x/θ")
    fits = [(how, q, c) for how, q, c in _RATIOS if how not in theirs and _close(got, want * q(x, th))]
    if len(fits) != 1:
        return  # none, or ambiguous: the other readings describe what they see
    how, _, cause = fits[0]
    ratio = (got[inside].double() / want[inside].double()).clamp(-1e12, 1e12)
    span = f"from {float(ratio.min()):.4g} to {float(ratio.max()):.4g}"
    right = "-(1/ε) · K((x - θ)/ε)" if name == "Heaviside" else "-(θ/ε) · K((x - θ)/ε)"
    why = f" (possible cause: {cause})" if cause else ""
    fail(
        f"the gradient of {name} with respect to threshold is the expected one {how} at every position: the "
        f"ratio of yours to the expected one, element by element over the window |x - θ| < ε/2, runs {span}",
        f"your θ-gradient is the right one {how}{why}. backward returns ∂out/∂θ itself, {right} · grad_output "
        "element-wise; autograd applies any chain rule outside the Function",
        code="theta_factor",
    )


def theta_grad_alone(impl: type, name: str, x0: Tensor, th0: Tensor, g: Tensor, bw: float, want_th: Tensor) -> None:
    """Fail when the θ-gradient is lost (or changed) in a call where x does NOT require grad and θ does: backward
    read the needs_input_grad flags of the other input (needs_input_grad[0] is x's, [1] is θ's)."""
    th = th0.clone().requires_grad_(True)
    try:
        out = impl.apply(x0.clone(), th, bw)
        (grad,) = torch.autograd.grad((out * g).sum(), (th,), allow_unused=True)
    except RuntimeError:
        grad = None
    grad = torch.zeros_like(th0) if grad is None else grad.detach()
    if _close(grad, want_th):
        return
    fail(
        f"{name}.apply(x, θ, ε) with x NOT requiring grad (and θ requiring it) gave θ a different gradient "
        f"(largest difference {float((grad - want_th).abs().max()):.4g}) than with both requiring grad",
        "θ's gradient depends on whether x requires grad: needs_input_grad[1] is θ's flag, [0] is x's (return "
        "the θ-gradient whenever ctx.needs_input_grad[1] is true, whatever x's flag)",
        code="needs_input_grad",
    )


_HALVES = tuple(  # (side, the learner's window, the missing half, the gate that cuts it, K): u = 0 on either side
    (side, where, other, gate, kernel)
    for side, where, other, gate, kernels in (
        (
            "upper",
            "θ ≤ x < θ + ε/2",
            "θ - ε/2 < x < θ",
            "1[x > θ] (the step the forward returns: only examples that fire move θ)",
            (
                lambda x, th, bw: ((x >= th) & ((x - th) / bw < 0.5)).to(x.dtype),
                lambda x, th, bw: ((x > th) & ((x - th) / bw < 0.5)).to(x.dtype),
            ),
        ),
        (
            "lower",
            "θ - ε/2 < x ≤ θ",
            "θ < x < θ + ε/2",
            "1[x <= θ] (only examples that don't fire move θ)",
            (
                lambda x, th, bw: ((x <= th) & ((x - th) / bw > -0.5)).to(x.dtype),
                lambda x, th, bw: ((x < th) & ((x - th) / bw > -0.5)).to(x.dtype),
            ),
        ),
    )
    for kernel in kernels
)
_RIGHT_WINDOW = "K = 1[|u| < 1/2] with u = (x - θ)/ε: the window |x - θ| < ε/2 on both sides of θ, whatever θ"
# (code, what the learner's window is, K(x, θ, ε)): the slope -(factor/ε) kept, only the window changed
_WINDOWS: tuple[tuple[str, str, Callable[[Tensor, Tensor, float], Tensor]], ...] = (
    (
        "window_one_sided",
        "one-sided: non-zero for every x below θ + ε/2, however far below θ, and cut only above (the rectangle "
        "compares u itself with 1/2, 1[u < 1/2]: the abs is missing)",
        lambda x, th, bw: ((x - th) / bw < 0.5).to(x.dtype),
    ),
    (
        "window_one_sided",
        "one-sided: non-zero for every x above θ - ε/2, however far above θ, and cut only below (the rectangle "
        "compares u itself with -1/2, 1[u > -1/2]: the abs is missing)",
        lambda x, th, bw: ((x - th) / bw > -0.5).to(x.dtype),
    ),
    *(
        (
            "window_half",
            f"only half of it: the {side} half, {where} (the other half, {other}, is missing): is one edge of the "
            f"rectangle put at u = 0 instead of ±1/2 (e.g. 0 <= u < 1/2), or is K multiplied by {gate}?",
            kernel,
        )
        for side, where, other, gate, kernel in _HALVES
    ),
    (
        "window_scaled_by_theta",
        "ε·θ wide instead of ε, so it grows with the threshold: u = (x - θ)/(ε·θ), a window relative to θ",
        lambda x, th, bw: ((x - th).abs() / (bw * th) < 0.5).to(x.dtype),
    ),
    (
        "window_scaled_by_theta",
        "ε/θ wide instead of ε, so it shrinks as the threshold grows: u = θ·(x - θ)/ε",
        lambda x, th, bw: ((x - th).abs() * th / bw < 0.5).to(x.dtype),
    ),
)


def _window_variants(got: Tensor, x: Tensor, th: Tensor, g: Tensor, bw: float, dth: Callable, name: str) -> None:
    """Fail when `got` is the right slope -(factor/ε) (read as `dth` at x = θ) times one of `_WINDOWS`' kernels."""
    slope = dth(th, th, bw).expand_as(x)  # u = 0: K = 1, what is left is -(factor/ε)
    right = dth(x, th, bw) * g
    for code, what, kernel in _WINDOWS:
        wrong = slope * kernel(x, th, bw) * g
        if _close(wrong, right) or not _close(got, wrong):
            continue
        diff = int((~torch.isclose(got.to(right.dtype), right, rtol=1e-4, atol=1e-5)).sum())
        fail(
            f"the gradient of {name} with respect to threshold has the right slope but another window: it differs "
            f"from the expected one at {diff}/{right.numel()} positions, each "
            + ("0 inside one half of" if code == "window_half" else "at the edge of or outside")
            + f" the window |x - θ| < ε/2 (ε = {bw:g})",
            f"your window is {what}. {_RIGHT_WINDOW}",
            code=code,
        )


def _constant_factor(
    impl: type, got: Tensor, x: Tensor, th: Tensor, g: Tensor, bw: float, dth: Callable, name: str
) -> None:
    """Fail when `got` is the expected θ-gradient times 2 and the learner's gradient at 4ε is the expected one there
    times 2 as well (a power of ε would change with ε: `DG.theta_factor` names those; other constants are left to
    the generic `scale` reading)."""
    want = dth(x, th, bw) * g
    inside = want != 0
    if not inside.any():
        return
    c = float((got[inside].double() / want[inside].double()).median())
    if abs(c - 2) > 1e-3 or not _close(got, want * c):  # other constants: the generic `scale` reading
        return
    xs, ths = x.clone().requires_grad_(True), th.clone().requires_grad_(True)
    try:
        (grad4,) = torch.autograd.grad((impl.apply(xs, ths, 4 * bw) * g).sum(), (ths,), allow_unused=True)
    except RuntimeError:
        return
    if grad4 is None or not _close(grad4.detach(), dth(x, th, 4 * bw) * g * c):
        return
    right = "-(1/ε) · K((x - θ)/ε)" if name == "Heaviside" else "-(θ/ε) · K((x - θ)/ε)"
    top = "1" if name == "Heaviside" else "θ"
    why = (
        f"a factor 2 from the bandwidth in the slope: it divides by ε/2 where ε belongs, -({top}/(ε/2)) (the "
        "window's half-width ε/2 used in the slope). The window is |x - θ| < ε/2, but the slope divides by ε"
    )
    fail(
        f"the gradient of {name} with respect to threshold is {c:.4g} × the expected one at every position, at "
        f"ε = {bw:g} and at ε = {4 * bw:g} alike (a constant, not a power of ε)",
        f"your θ-gradient shows {why}. backward returns {right} · grad_output",
        code="theta_constant_factor",
    )


def backward_error(err: RuntimeError, name: str) -> None:
    """Name an error autograd raised about what the learner's backward returned (not raised in their code)."""
    inplace_failure(err, name)  # an in-place edit of a tensor autograd saved, not what backward returned
    if any(_is_learner_frame(f.filename) for f in traceback.extract_tb(err.__traceback__)):
        raise err
    first = str(err).splitlines()[0]
    if "incorrect number of gradients" in first:
        hint = "backward returns one gradient per input of forward, in order: (grad_x, grad_threshold, None)"
        code = "grad_count"
    else:
        hint = "backward must return gradients shaped like x and threshold (and None for the bandwidth)"
        code = "grad_shape"
    fail(f"the backward pass of {name} failed: {first}", hint, code=code)


def dtype_kept(impl: type, name: str, x0: Tensor, th0: Tensor, bw: float) -> None:
    """Fail when the forward, given float64 (then float16) x and threshold, returns another floating dtype: the
    checker's float32 inputs can't tell `.float()` or a default-dtype constant from `.to(x.dtype)`. Forward only,
    without gradients; silent when the learner's forward raises on that dtype (the float32 checks judge it)."""
    for dtype in (torch.float64, torch.float16):
        try:
            with torch.no_grad():
                out = impl.apply(x0.to(dtype), th0.to(dtype), bw)
        except Exception:  # a forward that fails on another dtype is not this probe's to judge
            continue
        if not isinstance(out, Tensor) or not out.is_floating_point() or out.dtype == dtype:
            continue
        fail(
            f"{name}.apply(x, threshold, bandwidth) with {dtype} x and threshold returned {out.dtype}, not x's dtype "
            "(the values may be right)",
            f"keep x's dtype, as rectangle does: {'x * ' if name == 'JumpReLU' else ''}(x > threshold).to(x.dtype). "
            "Possible causes: .float() (always float32), torch.where(mask, 1.0, 0.0) with Python numbers (the "
            "default dtype), or a tensor made without dtype= (torch.ones(x.shape))",
            code="dtype",
        )


def grad_x_copies_theta(grad_x: Tensor, grad_th: Tensor, want_x: Tensor, want_th: Tensor, name: str) -> Tensor:
    """Name an x-gradient equal to θ's pseudo-derivative; return what the catalogue's `grads_swapped` may match.

    Only a real swap (grad_x is the expected θ-gradient AND grad_threshold is the expected x-gradient) is named
    `grads_swapped`; otherwise that entry gets NaNs (never matched) and the copy is named for what it is.
    """
    if _close(grad_x, want_x) or not _close(grad_x, want_th):
        return want_th if _close(grad_th, want_x) else torch.full_like(want_th, float("nan"))
    if _close(grad_th, want_x):
        return want_th  # a real swap: the catalogue names it
    step = "0 (the step is flat in x)" if name == "Heaviside" else "1[x > θ] · grad_output"
    th_state = "the threshold gradient is right" if _close(grad_th, want_th) else "the threshold gradient is wrong too"
    fail(
        f"the gradient of {name} with respect to x equals the θ pseudo-derivative -(factor/ε) · K((x - θ)/ε) · "
        f"grad_output ({th_state}); the gradients are not swapped",
        f"{name}'s x-gradient is {step}: the pseudo-derivative goes to θ only. Likely causes: the θ-gradient "
        "tensor also returned (or copied) as the x-gradient, or x's gradient computed with θ's formula",
        code="grad_x_theta_grad",
    )
    return want_th
