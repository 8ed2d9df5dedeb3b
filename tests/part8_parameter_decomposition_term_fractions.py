"""ablation_losses: a fraction of the term removed, or the term replaced by the mean term, read back (round BA).

Removing c·T_k for some c ≠ 1 (`terms[:, k] / 2`, `0.5 * terms[:, k]`, a factor left over from another formula) or
mean-ablating (W_0 - T_k + mean_k T_k: the term replaced by the average term, an activation-patching habit) moves
every loss but keeps its shape, so the generic hint was all a learner got. The factor is searched on a grid of
simple fractions (steps of 0.05 in [-2, 2], besides 0 and ±1, which the catalogue names), each with the mean over
output dims and, for a second slip at once, the sum. Searched only when the losses are not the right ones.
"""

from __future__ import annotations

import torch
from torch import Tensor

from tests import part8_parameter_decomposition_mistakes as mis
from utils.part8_parameter_decomposition import WeightChain

Mistakes = list[tuple[str, str, Tensor]]
FRACTIONS = [round(0.05 * n, 2) for n in range(-40, 41) if n not in (-20, 0, 20)]


def _losses(chain: WeightChain, firsts: list[Tensor], x: Tensor) -> Tensor:
    """Δy² [inst k batch d_out] with first matrix firsts[k]."""
    y = chain(x)
    return torch.stack([(mis.run_with_first(chain, W, x) - y).pow(2) for W in firsts]).permute(2, 0, 1, 3)


def ablation_term_fractions(chain: WeightChain, terms: Tensor, x: Tensor, out: Tensor) -> Mistakes:
    """[(term_fraction | mean_ablation, hint, out)] when out is what removing c·T_k (or T_k - mean T) gives."""
    if not isinstance(out, Tensor) or out.shape != (terms.shape[0], terms.shape[1], x.shape[0]):
        return []
    out = out.detach()
    W0, K = chain.weights[0], terms.shape[1]
    close = lambda v: torch.allclose(out.to(v.dtype), v, rtol=1e-4, atol=1e-6)
    reductions = {
        "": lambda d: d.mean(-1),
        ", and summed over the output dims instead of averaged": lambda d: d.sum(-1),
    }
    with torch.no_grad():
        if close(_losses(chain, [W0 - terms[:, k] for k in range(K)], x).mean(-1)):
            return []
        mean_term = terms.mean(1)
        sq = _losses(chain, [W0 - terms[:, k] + mean_term for k in range(K)], x)
        for slip, reduce in reductions.items():
            if close(reduce(sq)):
                hint = (
                    "your losses are those of replacing the term by the mean term (W_0 - terms[:, k] + "
                    f"terms.mean(1), a mean ablation){slip}: remove the term itself, W_0 - terms[:, k]; the loss is "
                    "the mean over output dims of (ablated output - chain(x))²"
                )
                return [("mean_ablation", hint, out)]
        for c in FRACTIONS:
            sq = _losses(chain, [W0 - c * terms[:, k] for k in range(K)], x)
            for slip, reduce in reductions.items():
                if close(reduce(sq)):
                    hint = (
                        f"your losses are those of removing {c:g} × the term (W_0 - {c:g} · terms[:, k]){slip}: "
                        "remove the whole term, W_0 - terms[:, k], and average the squared change over the output "
                        "dims"
                    )
                    return [("term_fraction", hint, out)]
    return []
