"""Part 8: formula variants a learner writes in place of the asked one (a delta without W,
a robust loss, the batch division inside the power, a batch-summed or round-robin ascent, the average of the
iterates, an output that is zero everywhere), and two probes the checkers' float32 inputs can't make: a float64 call
(a draw or cast that drops the dtype) and the spread of the batch means of the masks' r (draws paired along the
batch, e.g. antithetic r, 1 - r)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from tests import part8_parameter_decomposition_mistakes as mis
from tests import part8_parameter_decomposition_pairings as pairings
from tests.checking import FAILURE_PROBABILITY, fail

Mistakes = list[tuple[str, str, Tensor]]


# ---------------------------------------------------------------- an output that is 0 everywhere
def zero_output(right: Tensor, what: str, causes: str) -> Mistakes:
    """The all-zero output, named as such (a region description would call the zeros of `right` 'right')."""
    nonzero = right[right.abs() > 1e-12]
    if nonzero.numel() == 0:
        return []
    lo, hi = float(nonzero.abs().min()), float(nonzero.abs().max())
    hint = (
        f"{what} 0 everywhere, where the right values reach {lo:.4g} to {hi:.4g} (the entries that look right are "
        f"only those whose right value is 0 too): the two things compared are the same. Possible causes: {causes}"
    )
    return [("all_zero", hint, torch.zeros_like(right))]


ABLATION_ZERO = (
    "the run compared with itself (the original output computed with the ablation too, e.g. chain(x, layer_fn) "
    "where chain(x) was meant), the ablation never applied (W_0 - terms[:, k] built but not used by the run), or a "
    "result tensor created with zeros and never written"
)


# ---------------------------------------------------------------- masked_product: a delta without W
def product_delta_variants(p: dict[str, Tensor]) -> Mistakes:
    a, U, V, m, dm = (p[k] for k in ("a", "U", "V", "mask", "delta_mask"))
    with torch.no_grad():
        comps = torch.einsum("bic,ioc->bio", torch.einsum("bid,icd->bic", a, V) * m, U)
        no_w = comps + dm[..., None] * mis.mm(a, -(U @ V))
    hint = (
        "your delta term is delta_mask · (-U V) a: W is missing from the delta. The delta is what the subcomponents "
        "miss of the original matrix, W - U V, so the output is U (mask ⊙ V a) + delta_mask · (W - U V) a"
    )
    return [("delta_without_W", hint, no_w)]


def product_float64(fn: Callable, p: dict[str, Tensor]) -> None:
    """The inputs in float64: the output must stay float64 (a .float() cast or a float32 constant would drop it)."""
    names = ("a", "W", "U", "V", "mask", "delta_mask")
    q = {k: p[k].detach().double() for k in names}
    with torch.no_grad():
        out = fn(*(q[k] for k in names))
    _expect_float64(
        [("", out)],
        "masked_product on float64 inputs",
        "keep the inputs' dtype: no .float() (or float32 tensors created without dtype=) inside the function; "
        "every input here is float64, so the output must be float64 too",
    )


def _expect_float64(returned: list[tuple[str, Any]], call: str, fix: str) -> None:
    """Fail (code `dtype`) at the first returned tensor that is not float64: "<call> returned <label><dtype>"."""
    for label, t in returned:
        if isinstance(t, Tensor) and t.dtype != torch.float64:
            fail(f"{call} returned {label}{t.dtype}", fix, code="dtype")


# ---------------------------------------------------------------- reconstruction: a robust loss in place of MSE
def recon_robust(chain: Any, p: dict[str, list[Tensor]], x: Tensor) -> Mistakes:
    L = len(chain.weights)
    with torch.no_grad():
        target = chain(x)
        runs = [mis.masked_run(chain, p, x, set(range(L)))[0]] + [mis.masked_run(chain, p, x, {n})[0] for n in range(L)]
        out = []
        for name, loss in (
            ("smooth_l1_loss / Huber (β = 1)", lambda o: F.smooth_l1_loss(o, target, reduction="none")),
        ):
            per = [loss(o).mean((0, 2)).sum() for o in runs]
            hint = (
                f"your losses use {name} where the squared error belongs: each loss is the mean over output dims and "
                "the batch of (masked run - chain(x))², summed over instances (F.mse_loss(..., reduction='none'), "
                "not smooth_l1_loss or huber_loss)"
            )
            out.append(("robust_loss", hint, torch.stack([per[0], torch.stack(per[1:]).mean()])))
    return out


# ---------------------------------------------------------------- minimality: the batch division inside the power
def minimality_inner_batch(ci: list[Tensor], p: float, eps: float) -> Mistakes:
    B = ci[0].shape[0]
    with torch.no_grad():
        inside = sum(((g + eps) / B).pow(p).sum() for g in ci)
        eps_after = sum((g / B + eps).pow(p).sum() for g in ci)
        summed = sum((g.sum(0) + eps).pow(p).sum() for g in ci)
    hint = (
        f"your value divides the importances by the batch size B = {B} inside the power, ((g + eps)/B)^p: the mean "
        "over the batch comes after the power, Σ_inst mean_batch Σ_l Σ_c (g + eps)^p (sum the powers, then / B)"
    )
    hint_s = (
        f"your value sums the importances over the batch before the power, (Σ_batch g + eps)^p: the power is taken "
        f"per example, Σ_inst mean_batch Σ_l Σ_c (g + eps)^p (the power first, then the mean over the batch of {B})"
    )
    return [
        ("batch_inside_power", hint, inside),
        ("batch_inside_power", hint, eps_after),
        ("batch_summed_before_power", hint_s, summed / B),
        ("batch_summed_before_power", hint_s, summed),
    ]


# ---------------------------------------------------------------- adversarial ascent: batch-summed, round-robin
def _ascent(loss_fn: Callable, init: list[Tensor], n_steps: int, step: float, rule: str) -> Tensor:
    s = [t.detach().clone() for t in init]
    for n in range(n_steps):
        leaves = [t.requires_grad_(True) for t in s]
        grads = torch.autograd.grad(loss_fn(leaves), leaves)
        with torch.no_grad():
            if rule == "batch_summed":
                grads = [g.sum(0, keepdim=True).expand_as(g) for g in grads]
            new = [(t + step * g.sign()).clamp(0, 1) for t, g in zip(leaves, grads, strict=True)]
            if rule == "round_robin":
                new = [u if i == n % len(s) else t for i, (t, u) in enumerate(zip(leaves, new, strict=True))]
        s = [t.detach() for t in new]
    return torch.cat([t.flatten() for t in s])


def _iterates(loss_fn: Callable, init: list[Tensor], n_steps: int, step: float) -> list[Tensor]:
    """The flattened sources after each step (the initial ones first)."""
    s, seen = [t.detach().clone() for t in init], []
    seen.append(torch.cat([t.flatten() for t in s]))
    for _ in range(n_steps):
        leaves = [t.requires_grad_(True) for t in s]
        grads = torch.autograd.grad(loss_fn(leaves), leaves)
        with torch.no_grad():
            s = [(t + step * g.sign()).clamp(0, 1) for t, g in zip(leaves, grads, strict=True)]
        s = [t.detach() for t in s]
        seen.append(torch.cat([t.flatten() for t in s]))
    return seen


def adversarial_average(loss_fn: Callable, init: list[Tensor], n_steps: int, step: float) -> Mistakes:
    """The mean of the iterates (Polyak averaging), with or without the starting point."""
    seen = _iterates(loss_fn, init, n_steps, step)
    hint = (
        "your sources are the average of the iterates (Polyak averaging: the mean of the sources after each step{}): "
        "return the sources after the last step, r = clamp(r + step_size · sign(∂loss/∂r), 0, 1) applied n_steps "
        "times"
    )
    return [
        ("average_iterate", hint.format(""), torch.stack(seen[1:]).mean(0)),
        ("average_iterate", hint.format(", the starting point included"), torch.stack(seen).mean(0)),
    ]


def adversarial_float64(fn: Callable, loss_fn: Callable, init: list[Tensor], n_steps: int, step: float) -> None:
    """The sources in float64: they must come back float64 (a .float() cast or a float32 tensor would drop it)."""
    out = fn(loss_fn, [t.detach().double() for t in init], n_steps, step)
    _expect_float64(
        [(f"source {n} as ", o) for n, o in enumerate(out if isinstance(out, (list, tuple)) else [])],
        "adversarial_sources on float64 sources",
        "keep the sources' dtype: no .float() (or float32 tensors created without dtype=) inside the "
        "function; every source here is float64, so every returned source must be float64 too",
    )


def sigmoid_float64(impl: Any, name: str, x0: Tensor, alpha: float) -> None:
    """A float64 x: the forward's output must stay float64 (a .float() cast would drop it)."""
    x = x0.detach().double().requires_grad_(True)
    out = impl.apply(x, alpha)
    _expect_float64(
        [("", out)],
        f"{name}.apply(x, alpha) on a float64 x",
        "keep x's dtype: forward returns x.clamp(0, 1) as it is (no .float(), no float32 tensor created "
        "without dtype=); on a float64 x the output must be float64 too",
    )


def adversarial_variants(loss_fn: Callable, init: list[Tensor], n_steps: int, step: float) -> Mistakes:
    summed = (
        "every example's source moved the same way: your step follows the sign of the gradient summed over the batch "
        "(axis 0), one direction per column; the ascent is per entry, r = clamp(r + step_size · sign(∂loss/∂r), 0, 1) "
        "with each entry's own gradient (no .sum(0) or .mean(0) before the sign)"
    )
    robin = (
        "your steps update one source per step, in turn (step n moves source n mod the number of sources): every step "
        "moves every source, each by the sign of its own gradient, all computed at the same point"
    )
    robin_out, S = _ascent(loss_fn, init, n_steps, step, "round_robin"), len(init)
    split = torch.cat([t.flatten() for t in mis.adversarial_reference(loss_fn, init, n_steps // S, step)])
    if torch.allclose(robin_out, split, rtol=1e-4, atol=1e-5):  # this loss doesn't couple the sources: both fit
        robin = (
            f"your sources are where n_steps // {S} = {n_steps // S} steps put them (each source moved "
            f"{n_steps // S} times, not n_steps = {n_steps}): either the n_steps steps are split among the {S} "
            "sources (a loop of n_steps // len(sources) steps, every source moved at each), or each step updates "
            "one source in turn (step n moves source n mod the number of sources). Take n_steps steps, each "
            "moving every source by the sign of its own gradient, all computed at the same point"
        )
    return [
        ("batch_summed_gradient", summed, _ascent(loss_fn, init, n_steps, step, "batch_summed")),
        ("round_robin", robin, robin_out),
        *adversarial_average(loss_fn, init, n_steps, step),
        *pairings.adversarial_rounded(
            torch.cat([t.flatten() for t in mis.adversarial_reference(loss_fn, init, n_steps, step)])
        ),
    ]


# ---------------------------------------------------------------- sample_masks: dtype and draws paired along the batch
def masks_float64(sample_masks: Callable, device: Any) -> None:
    f64 = {"dtype": torch.float64, "device": device}
    ci = [torch.full((6, 2, 3), 0.3, **f64), torch.full((6, 2, 2), 0.55, **f64)]
    masks, deltas = sample_masks(ci)
    _expect_float64(
        [
            (f"{kind} {n} as ", t)
            for kind, group in (("mask", masks), ("delta mask", deltas))
            for n, t in enumerate(group)
        ],
        "sample_masks on float64 causal importances",
        "draw in the importances' dtype: torch.rand(shape, dtype=g.dtype, device=g.device) or "
        "torch.rand_like(g) (torch.rand(shape) alone draws float32)",
    )


def batch_mean_spread(rs: list[Tensor], deltas: list[Tensor]) -> None:
    """Independent U[0, 1] draws: each entry's mean over the batch has variance 1/(12 B), so for one group (one
    matrix's r, or the delta masks) S = 12 B Σ_entries (mean - 1/2)² is chi-square with k = its number of entries.
    Draws paired along the batch (antithetic r and 1 - r, stratified or sorted draws) make the means far too close
    to 1/2: S far below k. Lower tail (Chernoff): P(S ≤ z k) ≤ (z e^{1 - z})^{k/2}; z is chosen so that this is
    FAILURE_PROBABILITY / the number of groups tested."""
    groups = [(f"r of matrix {n}", r) for n, r in enumerate(rs)] + [("the delta masks", torch.cat(deltas, -1))]
    for name, t in groups:
        cols = t.detach().double().reshape(t.shape[0], -1)
        B, k = cols.shape
        S = float(12 * B * (cols.mean(0) - 0.5).pow(2).sum())
        target = math.log(FAILURE_PROBABILITY / len(groups)) * 2 / k  # log z + 1 - z = target, z in (0, 1)
        lo, hi = 1e-12, 1.0
        for _ in range(200):  # bisection: log z + 1 - z increases on (0, 1)
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if math.log(mid) + 1 - mid < target else (lo, mid)
        if lo * k > S:
            fail(
                f"over the batch of {B}, every entry's mean of {name} is too close to 1/2: 12·B·Σ(mean - 1/2)² = "
                f"{S:.3g} over its {k} entries, where independent draws give about {k} (below {lo * k:.3g} with "
                f"probability {FAILURE_PROBABILITY / len(groups):.2g})",
                "every example draws its own r, independent of the others: draws paired along the batch (the second "
                "half 1 - r of the first, antithetic), stratified or sorted draws cancel in the batch mean. Draw the "
                "whole [batch inst C] shape with torch.rand",
                code="paired_over_batch",
            )
