"""Part 8 importance_minimality_loss: a slip in where eps goes together with a slip in a reduction, named as both.

Each slip alone has its catalogue entry (eps added after the power, once per sum, left out, or a floor at eps; a
mean over the subcomponents, the matrices or the instances, a sum over the batch). These are the pairs, the
penalty with one eps slip and one reduction slip, on the checker's inputs (separated by `audit_catalogues`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

Mistakes = list[tuple[str, str, Tensor]]


def _terms(p: float, eps: float) -> dict[str, Callable[[Tensor, str], Tensor]]:
    """Per matrix: the [batch inst] reduction over C (sum or mean) of the term with one eps slip."""
    over_c = lambda t, c: t.mean(-1) if c == "mean" else t.sum(-1)
    return {
        "eps added after the power (g^p + eps)": lambda g, c: over_c(g.pow(p) + eps, c),
        "eps added once to each matrix's sum (Σ_c g^p + eps)": lambda g, c: over_c(g.pow(p), c) + eps,
        "eps left out (g^p)": lambda g, c: over_c(g.pow(p), c),
        "eps as a floor (g.clamp(min=eps)^p) instead of added": lambda g, c: over_c(g.clamp(min=eps).pow(p), c),
    }


REDUCTIONS: dict[str, tuple[str, str, str, str]] = {  # (over C, over matrices, over batch, over instances)
    "a mean over the subcomponents": ("mean", "sum", "mean", "sum"),
    "a mean over the matrices": ("sum", "mean", "mean", "sum"),
    "a sum over the batch": ("sum", "sum", "sum", "sum"),
    "a mean over the instances": ("sum", "sum", "mean", "mean"),
}


def penalty_pairs(ci: list[Tensor], p: float, eps: float) -> Mistakes:
    """Every (eps slip, reduction slip) pair of Σ_inst mean_batch Σ_l Σ_c (g + eps)^p."""
    out: Mistakes = []
    with torch.no_grad():
        for term_name, term in _terms(p, eps).items():
            for red_name, (c, layers, batch, inst) in REDUCTIONS.items():
                per = [term(g, c) for g in ci]  # [batch inst] each
                total = sum(per) / (len(per) if layers == "mean" else 1)
                total = total.mean(0) if batch == "mean" else total.sum(0)
                value = total.mean() if inst == "mean" else total.sum()
                hint = (
                    f"two slips: {term_name}, and {red_name}. The penalty is Σ_inst mean_batch Σ_l Σ_c (g + eps)^p: "
                    "eps inside the power, summed over subcomponents and matrices, averaged over the batch"
                )
                out.append(("two_slips", hint, value))
    return out
