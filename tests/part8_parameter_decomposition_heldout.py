"""Probes and mutants for part 8's checkers (`tests.part8_parameter_decomposition`), from the tenth fresh held-out
measurement.

* one tensor expected, a tuple or list returned: said so, with what to return instead;
* CausalImportance: inner activations h = c · V a with c a usual scale (1/√d_in, ...), and the slope each leaky
  sigmoid actually uses outside [0, 1], measured on b_out pushed far below 0 and far above 1 (an alpha not passed
  leaks with the default 0.01);
* importance_minimality_loss: the penalty of all-zero importances, where (0 + eps)^p still counts (named when
  the penalty of importances all 0.3 is right);
* adversarial_sources: the sources it returns after 0 steps (they should be init itself);
* one-off mutants: ablation's difference of squares, faithfulness with U V summed over instances, masked_product's
  delta term scaled by the mean mask, a layerwise accumulator started from the full loss.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from tests import part8_parameter_decomposition_mistakes as mis
from tests.checking import fail

Mistakes = list[tuple[str, str, Tensor]]


def one_tensor(out: Any, what: str, hint: str) -> None:
    """Fail (code not_tensor, with a hint) when `out` is a tuple or list where one tensor was expected."""
    if isinstance(out, tuple | list):
        kinds = ", ".join(type(o).__name__ for o in out)
        fail(
            f"{what} should be one torch.Tensor, got a {type(out).__name__} of {len(out)} ({kinds})",
            hint,
            code="not_tensor",
        )


SVD_RETURNED = (
    "you returned the factors of the SVD: build the terms from them, term k = S[..., k] · outer(U[..., :, k], "
    "Vh[..., k, :]), and return them stacked in one tensor [inst r d_out d_in]"
)
TUPLE_FORWARD = (
    "forward returns one tensor, clamp(x, 0, 1): only backward returns one gradient per input of forward (a None "
    "for alpha)"
)
LIST_PENALTY = "add the matrices' penalties into one scalar tensor (sum over matrices), don't return them as a list"


# --------------------------------------------------------------------------------------------
# CausalImportance
# --------------------------------------------------------------------------------------------
def ci_scale_mistakes(p: dict[str, Tensor], alpha: float) -> Mistakes:
    """Inner activations h = c · V a for usual scales c (sizes of a, V)."""
    d_in, C = p["V"].shape[-1], p["V"].shape[-2]
    scales = {
        f"1/√d_in = 1/√{d_in}": d_in**-0.5,
        f"1/d_in = 1/{d_in}": 1 / d_in,
        f"1/√C = 1/√{C}": C**-0.5,
        f"1/C = 1/{C}": 1 / C,
        f"√d_in = √{d_in}": d_in**0.5,
    }
    with torch.no_grad():
        return [
            (
                "inner_scaled",
                f"your importances are those of inner activations h = V a × {name}: h is V a itself, no scaling "
                "(this is not attention's scaled dot product)",
                mis.ci_reference({**p, "V": p["V"] * c}, alpha)[0],
            )
            for name, c in scales.items()
        ]


def ci_slopes(module: torch.nn.Module, p: dict[str, Tensor], alpha: float) -> None:
    """The slope of each output where every z is far below 0 (lower) or far above 1 (upper), read off b_out's
    gradient: a leaky side whose slope is not alpha (the default 0.01 of an alpha not passed) is named."""
    b_out = getattr(module, "b_out", None)
    if not isinstance(b_out, torch.nn.Parameter):
        return
    saved, n = b_out.detach().clone(), p["a"].shape[0]
    seen = {}
    try:
        for which, side, shift in ((0, "lower", -50.0), (1, "upper", 50.0)):
            with torch.no_grad():
                b_out.copy_(saved + shift)
            out = module(p["a"], p["V"])
            if not isinstance(out, tuple | list) or len(out) != 2 or not isinstance(out[which], Tensor):
                return
            if not out[which].requires_grad:
                return
            (g,) = torch.autograd.grad(out[which].sum(), [b_out], allow_unused=True)
            if g is None:
                return
            slope = g / n
            if not torch.allclose(slope, slope.flatten()[0].expand_as(slope), rtol=1e-3, atol=1e-6):
                return
            seen[side] = float(slope.flatten()[0])
    except Exception:  # a probe only: the checks that follow report the failure
        return
    finally:
        with torch.no_grad():
            b_out.copy_(saved)
    where = {"lower": "below 0 (every z < 0)", "upper": "above 1 (every z > 1)"}
    for side, s in seen.items():
        if abs(s - alpha) > 1e-3 * alpha:
            other = "Upper" if side == "upper" else "Lower"
            guess = (
                " (0.01 is the sigmoid's default alpha: was self.alpha not passed to it?)"
                if abs(s - 0.01) < 1e-6
                else ""
            )
            fail(
                f"the gradient of the {side}-leaky importances {where[side]} has slope {s:.4g}, expected alpha = "
                f"{alpha:g} (the module's self.alpha){guess}",
                f"pass self.alpha to both sigmoids: {other}LeakyHardSigmoid.apply(z, self.alpha)",
                code="alpha_not_passed",
            )


GRAD_HINT = (
    "the importances are right but this gradient is not: possible causes: a leaky sigmoid's backward (its slope "
    "outside [0, 1] must be alpha = self.alpha, on the lower side for the first output and the upper side for the "
    "second), an input detached or replaced by a constant, or a value computed outside autograd (.item(), numpy)"
)


# --------------------------------------------------------------------------------------------
# importance_minimality_loss
# --------------------------------------------------------------------------------------------
def zeros_probe(fn: Callable, ci: list[Tensor], p: float, eps: float) -> None:
    """The penalty of importances that are all exactly 0: n_inst · Σ_l C_l · eps^p (each (0 + eps)^p counts)."""
    zeros = [torch.zeros_like(g) for g in ci]
    try:
        got = fn(zeros, p, eps)
    except Exception:  # a probe only
        return
    if not isinstance(got, Tensor) or got.numel() != 1:
        return
    expected = ci[0].shape[1] * sum(g.shape[-1] for g in ci) * eps**p
    try:  # right where no importance is 0 (so eps and p are used as asked), 0 where all are
        inside = fn([torch.full_like(g, 0.3) for g in ci], p, eps)
    except Exception:  # a probe only
        return
    right = ci[0].shape[1] * sum(g.shape[-1] for g in ci) * (0.3 + eps) ** p
    if not isinstance(inside, Tensor) or inside.numel() != 1 or abs(float(inside) - right) > 1e-4 * right:
        return
    if abs(float(got)) < 1e-3 * expected:
        fail(
            f"importance_minimality_loss of importances that are all exactly 0 is {float(got):.4g}, expected "
            f"{expected:.4g} = instances × subcomponents × eps^p",
            "zeros skipped: (0 + eps)^p still counts: apply (g + eps) ** p to every importance, 0 included (no "
            "torch.where(g > 0, ...) or mask on g)",
            code="zeros_skipped",
        )


# --------------------------------------------------------------------------------------------
# adversarial_sources
# --------------------------------------------------------------------------------------------
def start_probe(
    adversarial_sources: Callable, loss_fn: Callable, init: list[Tensor], flat: Tensor, step: float
) -> None:
    """After 0 steps the sources are init itself; a start elsewhere (zeros, ones, random) is named. Skipped when
    n_steps is ignored (the 0-step output is the n-step one)."""
    try:
        out = adversarial_sources(loss_fn, [t.clone() for t in init], 0, step)
        out0 = torch.cat([torch.as_tensor(o).detach().flatten() for o in out])
    except Exception:  # a probe only
        return
    start = torch.cat([t.flatten() for t in init])
    if out0.shape != start.shape or torch.allclose(out0, start, atol=1e-6) or torch.allclose(out0, flat, atol=1e-6):
        return
    shown, initial = (", ".join(f"{float(v):.3g}" for v in t[:4]) for t in (out0, start))
    fail(
        f"with n_steps = 0 adversarial_sources returns {shown}, ..., not init ({initial}, ...)",
        "init ignored: the ascent starts from init (copies of it, [s.detach().clone() for s in init]), not from "
        "zeros or fresh values",
        code="init_ignored",
    )


# --------------------------------------------------------------------------------------------
# one-off mutants
# --------------------------------------------------------------------------------------------
def ablation_squares(chain: Any, terms: Tensor, x: Tensor) -> Mistakes:
    with torch.no_grad():
        y0, K = chain(x), terms.shape[1]
        runs = [mis.run_with_first(chain, chain.weights[0] - terms[:, k], x) for k in range(K)]
        out = torch.stack([(y.pow(2) - y0.pow(2)).mean(-1) for y in runs]).permute(2, 0, 1)
    hint = (
        "the loss is the mean of the squared difference, (y_ablated - y)², not the difference of the squares, "
        "y_ablated² - y² (which can be negative)"
    )
    return [("difference_of_squares", hint, out)]


def faithfulness_inst_summed(weights: list[Tensor], U: list[Tensor], V: list[Tensor]) -> Mistakes:
    n = sum(W[0].numel() for W in weights)
    sq = sum(
        (W - torch.einsum("iac,icb->ab", u, v)).pow(2).sum((-2, -1)) for W, u, v in zip(weights, U, V, strict=True)
    )
    hint = (
        "your U V is summed over the instances (an einsum output 'd_out d_in' without inst): keep inst in the "
        "product, 'inst d_out C, inst C d_in -> inst d_out d_in' (or U @ V), each instance has its own"
    )
    return [("instances_summed", hint, (sq / n).sum())]


def product_delta_mean_mask(p: dict[str, Tensor]) -> Mistakes:
    with torch.no_grad():
        out = mis.product_reference({**p, "delta_mask": p["mask"].mean(-1)})
    hint = "the delta term is scaled by delta_mask (its own draw), not by the mean of the subcomponent masks"
    return [("delta_mask_from_masks", hint, out)]


def recon_accumulator(right: Tensor, chain: Any, p: dict[str, list[Tensor]], x: Tensor) -> Mistakes:
    L = len(chain.weights)
    layerwise = (right[0] + right[1] * L) / L
    hint = (
        f"your layerwise loss is (full + Σ_l loss_l) / L: the accumulator starts from the full loss; start it from "
        f"0, the mean of the L = {L} single-matrix losses alone"
    )
    return [("layerwise_from_full", hint, torch.stack([right[0], layerwise]))]
