"""Part 8: ablation losses normalised, scaled or measured against the batch, named.

* a relative (normalised) error: the squared change divided by the mean square of the original output, over
  everything or per instance (per example is `normalised`, in the catalogue);
* each term normalised to unit Frobenius norm before it is removed (T_k / ‖T_k‖);
* the change Δy centred over the batch before it is squared (a variance where a mean square belongs).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from tests import part8_parameter_decomposition_ablation_pairs as pairs
from tests import part8_parameter_decomposition_ablation_runs as abl_runs
from tests import part8_parameter_decomposition_layer_fn_slips as layer_fn_slips
from tests import part8_parameter_decomposition_layer_reads as reads
from tests import part8_parameter_decomposition_layer_sums as layer_sums
from tests import part8_parameter_decomposition_misplaced as misplaced
from tests import part8_parameter_decomposition_mistakes as mis
from tests import part8_parameter_decomposition_named as fresh
from tests import part8_parameter_decomposition_one_input as one_input
from tests import part8_parameter_decomposition_structure_slips as structure
from tests import part8_parameter_decomposition_substitutes as subs
from tests import part8_parameter_decomposition_term_fractions as fractions
from utils.part8_parameter_decomposition import WeightChain

Mistakes = list[tuple[str, str, Tensor]]


def _deltas(chain: WeightChain, terms: Tensor, x: Tensor, unit: bool = False) -> Tensor:
    """Δy [k batch inst d_out] of removing each term (each scaled to unit Frobenius norm when `unit`)."""
    y, W0 = chain(x), chain.weights[0]
    T = terms / terms.norm(dim=(-2, -1), keepdim=True) if unit else terms
    return torch.stack([mis.run_with_first(chain, W0 - T[:, k], x) - y for k in range(terms.shape[1])])


def _losses(d: Tensor) -> Tensor:
    return d.pow(2).mean(-1).permute(2, 0, 1)  # [k batch inst] -> [inst k batch]


def ablation_normalised(chain: WeightChain, terms: Tensor, x: Tensor) -> Mistakes:
    with torch.no_grad():
        y, d = chain(x), _deltas(chain, terms, x)
        right, ms = _losses(d), y.pow(2)  # y² [batch inst d_out]
        relative = (
            "a relative (normalised) error: the loss is the plain mean over output dims of (y_ablated - y)², not "
            "divided by the size of the original output y = chain(x)"
        )
        found = [
            (
                "relative",
                f"your values are the expected ones divided by mean(chain(x)²) = {float(ms.mean()):.4g}, "
                f"the mean square of the original output over everything: {relative}",
                right / ms.mean(),
            ),
            (
                "relative",
                "your values are the expected ones divided by each instance's mean of chain(x)² (over the "
                f"batch and the output dims): {relative}",
                right / ms.mean((0, 2))[:, None, None],
            ),
            (
                "unit_term",
                "your values are what removing each term scaled to unit Frobenius norm, T_k / ‖T_k‖, "
                "gives: remove the term itself, W_0 - terms[:, k], with its own size (its size is what the loss "
                "measures)",
                _losses(_deltas(chain, terms, x, unit=True)),
            ),
            (
                "batch_centred",
                "your values are those of Δy = y_ablated - y centred over the batch before squaring "
                "(Δy - Δy.mean(batch)): a variance where a mean square belongs, which also makes an example's loss "
                "depend on the other examples; square Δy itself and average over the output dims only",
                _losses(d - d.mean(1, keepdim=True)),
            ),
        ]
    return found


def ablation_more(fn: Callable, chain: WeightChain, terms: Tensor, x: Tensor, out: Tensor) -> Mistakes:
    """`fresh.ablation_terms_ignored`, the normalisations above, other baselines and other losses (`subs`)."""
    named = fresh.ablation_terms_ignored(fn, chain, terms, x, out) + ablation_normalised(chain, terms, x)
    named += one_input.ablation_one_input(chain, terms, x) + misplaced.ablation_factors(chain, terms, x, out)
    named += structure.ablation_slips(fn, chain, terms, x)  # + the squeeze probe (one instance, one term)
    named += reads.ablation_input_direction(chain, terms, x)  # a direction projected out of a
    named += abl_runs.ablation_linearity(chain, terms, x)  # (chain(-T_k alone) - chain(0))²
    named += pairs.ablation_pairs(chain, terms, x)  # (T_k x)², and two slips at once
    named += fractions.ablation_term_fractions(chain, terms, x, out)  # W_0 - c·T_k, a mean ablation
    named += layer_fn_slips.ablation_layer_fn_slips(chain, terms, x)  # bias or activation inside layer_fn
    return named + subs.ablation_substitutes(chain, terms, x) + layer_sums.ablation_every_layer(chain, terms, x)
