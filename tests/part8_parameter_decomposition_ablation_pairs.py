"""Part 8 ablation_losses: the change measured at the first matrix's product, and two slips at once, named.

* `product_change`: the loss measured on the first matrix's product, mean over its output dims of (T_k x)² (what
  W_0 - T_k changes there, before the bias, the activation and the later matrices), not on chain(x).
* `two_slips`: one slip in the ablated matrix (the term kept alone, added, removed cumulatively, or the last term
  every time) together with one in the per-example reduction (a sum over output dims, |Δy|, a root, the square
  of the mean, the Euclidean distance). Each single slip has its own entry in the catalogue; these are the pairs.

Every entry is the reference with the slips applied, run on the checker's inputs (separated by `audit_catalogues`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from tests import part8_parameter_decomposition_mistakes as mis
from utils.part8_parameter_decomposition import WeightChain

Mistakes = list[tuple[str, str, Tensor]]


def _matrices(W0: Tensor, terms: Tensor) -> dict[str, Callable[[int], Tensor]]:
    return {
        "the term kept alone (terms[:, k] as the first matrix) instead of removed": lambda k: terms[:, k],
        "the term added (W_0 + terms[:, k]) instead of subtracted": lambda k: W0 + terms[:, k],
        "the terms removed cumulatively (W_0 - terms[:, :k + 1].sum(1): subtracting from the previous ablation)": (
            lambda k: W0 - terms[:, : k + 1].sum(1)
        ),
        "the last term removed for every k (a closure that looks k up late)": lambda k: W0 - terms[:, -1],
    }


REDUCTIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "a sum over output dims instead of the mean": lambda d: d.pow(2).sum(-1),
    "the mean of |Δy| instead of Δy²": lambda d: d.abs().mean(-1),
    "the square root of the mean squared change": lambda d: d.pow(2).mean(-1).sqrt(),
    "the square of the mean change, (mean Δy)², instead of mean(Δy²)": lambda d: d.mean(-1).pow(2),
    "the Euclidean distance ‖Δy‖ instead of mean(Δy²)": lambda d: d.norm(dim=-1),
}


def ablation_pairs(chain: WeightChain, terms: Tensor, x: Tensor) -> Mistakes:
    """The product-change reading, then every (ablated matrix, reduction) pair of slips."""
    with torch.no_grad():
        original, K = chain(x), terms.shape[1]
        product = torch.stack([mis.mm(x, terms[:, k]).pow(2).mean(-1) for k in range(K)]).permute(2, 0, 1)
        out: Mistakes = [
            (
                "product_change",
                "your losses are the change of the first matrix's product, mean over its output dims of (T_k x)² "
                "(W_0 x against (W_0 - T_k) x), not of the model's output: run the whole chain with the ablated "
                "first matrix, chain(x, layer_fn), and compare with chain(x)",
                product,
            )
        ]
        for first_name, first in _matrices(chain.weights[0], terms).items():
            deltas = torch.stack([mis.run_with_first(chain, first(k), x) - original for k in range(K)])
            for red_name, reduce in REDUCTIONS.items():
                hint = (
                    f"two slips: {first_name}, and {red_name}. Each loss is the mean over output dims of "
                    "(chain(x) with W_0 - terms[:, k] as its first matrix - chain(x))²"
                )
                out.append(("two_slips", hint, reduce(deltas).permute(2, 0, 1)))
    return out
