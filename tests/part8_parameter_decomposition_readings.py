"""Part 8: mistakes that re-read a right quantity (a loss put on a log scale or shared out over an axis, a full loss
summed from the single-matrix ones, the other matrices of a layerwise run masked too, the penalty put on a
transformed importance, each source's gradient read with the others held where they started)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from tests import part8_parameter_decomposition_mistakes as mis

Mistakes = list[tuple[str, str, Tensor]]
NO_GRAD = "compute the loss from U and V with torch operations (no torch.no_grad(), .detach() or .item())"


def divided_twice(loss: Tensor, right: Tensor, n: int) -> tuple[str, str] | None:
    """(code, hint) when a mean over N entries is 1/N × the right one: divided by N twice."""
    if float(right) != 0 and abs(float(loss) / float(right) * n - 1) < 1e-4:
        return "divided_twice", (
            f"your value is 1/N = 1/{n} × the expected one (N = {n}, the entries of one instance's matrices): "
            "divided by N twice, e.g. inside the square ((Δ / N)² = Δ² / N²) or a mean over entries then / N "
            "again; square first, then divide the sum by N once"
        )
    return None


def output_readings(got: Tensor, right: Tensor, dims: str) -> Mistakes:
    """The right values put on a log scale (log, log10 or log2 of value + c, with the small c read off the
    learner's own output, |c| ≤ 1e-3 · the largest value), or divided by their sum (or max, or norm) along one named
    axis: a plotting habit carried into the function. Values only: a learner's output that isn't one of them costs
    nothing; the hint says what the output is and what the function returns instead."""
    out: Mistakes = []
    if not isinstance(got, Tensor) or got.shape != right.shape or not got.is_floating_point() or right.min() < 0:
        return out
    got, right = got.detach().to(right.dtype), right.detach()
    top = float(right.abs().max())
    for base, name in ((torch.e, "log"), (10.0, "log10"), (2.0, "log2")):
        c = float((torch.pow(base, got.clamp(max=60)) - right).median())
        if abs(c) <= 1e-3 * top and float((right + c).min()) > 0:
            shown = f" + {c:.1g}" if abs(c) > 1e-12 * top else ""
            hint = (
                f"your values are {name}(loss{shown}) of the right losses: a log scale belongs to the plot "
                "(plt.yscale('log'), or a norm= on the heatmap), not to the function; return the losses themselves"
            )
            out.append(("log_scale", hint, torch.log(right + c) / torch.log(torch.tensor(base, dtype=right.dtype))))
    for axis, name in enumerate(dims.split()):
        for how, total in (
            ("sum", right.sum(axis, keepdim=True)),
            ("max", right.amax(axis, keepdim=True)),
            ("norm", right.norm(dim=axis, keepdim=True)),
        ):
            hint = (
                f"your values are the right ones divided by their {how} over `{name}` (each a share of the total, "
                f"so they add up to 1 along `{name}`)"
                if how == "sum"
                else f"your values are the right ones divided by their {how} over `{name}`"
            )
            out.append(("normalised", hint + ": return the losses themselves, unnormalised", right / total))
    return out


def full_as_sum(right: Tensor, n_matrices: int) -> Mistakes:
    """The full loss taken as the sum of the L single-matrix losses (L × the layerwise loss), as if the loss were
    additive over matrices."""
    hint = (
        f"your full loss is the sum of the L = {n_matrices} single-matrix losses (L × the layerwise loss): masking "
        "every matrix at once is not additive (the errors of the matrices compound through the chain); compute the "
        "full loss from its own run, with every matrix masked (masks[l], delta_masks[l]) in the same forward pass"
    )
    return [("full_is_sum", hint, torch.stack([right[1] * n_matrices, right[1]]))]


def recon_others(chain: Any, p: dict[str, list[Tensor]], x: Tensor) -> Mistakes:
    """The layerwise runs with the other matrices not left as the original W but run through masked_product too:
    with all-zero masks and delta masks (each such matrix then maps to 0), or with mask 1 and their random delta
    mask kept. The full loss is the right one in both."""
    L, target = len(chain.weights), chain(x)
    others = {
        "zero masks": lambda layer: (torch.zeros_like(p["masks"][layer]), torch.zeros_like(p["delta_masks"][layer])),
        "masks of 1 but their random delta masks": lambda layer: (
            torch.ones_like(p["masks"][layer]),
            p["delta_masks"][layer],
        ),
    }
    out: Mistakes = []
    with torch.no_grad():
        full = mis.recon_reference(chain, p, x)[0]
        for name, masks in others.items():

            def run(masked: int, masks: Callable = masks) -> Tensor:
                def layer_fn(n: int, a: Tensor) -> Tensor:
                    m, dm = (p["masks"][n], p["delta_masks"][n]) if n == masked else masks(n)
                    q = {"a": a, "W": chain.weights[n], "U": p["U"][n], "V": p["V"][n]}
                    return mis.product_reference({**q, "mask": m, "delta_mask": dm})

                return (chain(x, layer_fn) - target).pow(2).mean((0, 2)).sum()

            layerwise = torch.stack([run(masked) for masked in range(L)]).mean()
            hint = (
                f"your layerwise runs pass the other matrices through masked_product too, with {name}: in the run "
                "for matrix l only matrix l is masked; every other matrix is the original chain.weights[j], used "
                "as it is (a plain product, no masked_product, no masks)"
            )
            out.append(("others_masked", hint, torch.stack([full, layerwise])))
    return out


def minimality_penalties(ci: list[Tensor], p: float, eps: float) -> Mistakes:
    """The penalty put on g² instead of g, or the log penalty p·log(g + eps) in place of (g + eps)^p."""
    total = lambda f: sum(f(g).sum(-1) for g in ci).mean(0).sum()
    with torch.no_grad():
        return [
            (
                "squared_importances",
                "your penalty is (g² + eps)^p, on the squared importances: the penalty is (g + eps)^p on the "
                "importances themselves (they are already ≥ 0)",
                total(lambda g: (g.pow(2) + eps).pow(p)),
            ),
            (
                "log_penalty",
                "your penalty is p · log(g + eps), a log penalty: the penalty is the power (g + eps)^p, "
                "(g + eps).pow(p)",
                total(lambda g: p * torch.log(g + eps)),
            ),
        ]


def held_at_init(loss_fn: Callable, init: list[Tensor], n_steps: int, step: float) -> Mistakes:
    """Each source's gradient taken with the other sources held at their initial values (only its own moves)."""
    s = [t.detach().clone() for t in init]
    for _ in range(n_steps):
        new = []
        for i in range(len(s)):
            leaf = s[i].clone().requires_grad_(True)
            (g,) = torch.autograd.grad(loss_fn([leaf if j == i else init[j].detach() for j in range(len(s))]), [leaf])
            new.append((s[i] + step * g.sign()).clamp(0, 1).detach())
        s = new
    hint = (
        "each source's gradient was read with the other sources held at their initial values: on every step take "
        "the gradients at the current sources, all of them (one torch.autograd.grad of the loss of the current "
        "sources with respect to every source)"
    )
    return [("others_at_init", hint, torch.cat([t.flatten() for t in s]))]
