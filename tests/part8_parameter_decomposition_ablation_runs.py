"""Part 8 ablation_losses: runs compared the wrong way, named.

* linearity shortcuts: the change read as the difference of a run whose first matrix is ±T_k alone and a run
  whose first matrix is 0 (exact only for a linear chain; the bias and activations after W_0 break it);
* a chain whose last matrix has no activation (the contract allows None), so its outputs can be negative: the
  squared difference of |outputs| (or of the outputs through a ReLU) is then no longer the squared change.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

import solutions.part8_parameter_decomposition as sol
from tests import part8_parameter_decomposition_float64_runs as f64_runs
from tests import part8_parameter_decomposition_mistakes as mis
from tests import part8_parameter_decomposition_named as fresh
from tests import part8_parameter_decomposition_outputs as outputs
from tests import part8_parameter_decomposition_probes as probes
from tests.checking import expect_matches, expect_tensor, returned
from tests.mutants import call
from utils.part8_parameter_decomposition import WeightChain

Mistakes = list[tuple[str, str, Tensor]]

LINEARITY = (
    "your values are the squared difference of two runs that both replace W_0: one with {first} alone as the first "
    "matrix and one with 0 there. That equals the ablation only for a linear chain; the bias and the activations "
    "after W_0 make it differ. Run the chain once with W_0 - T_k as its first matrix and compare with chain(x)"
)


def ablation_linearity(chain: WeightChain, terms: Tensor, x: Tensor) -> Mistakes:
    """(chain(first = ∓T_k) - chain(first = 0))²: the term's effect read as if the chain were linear."""
    with torch.no_grad():
        zero = mis.run_with_first(chain, torch.zeros_like(chain.weights[0]), x)

        def losses(sign: float) -> Tensor:
            K = terms.shape[1]
            out = [(mis.run_with_first(chain, sign * terms[:, k], x) - zero).pow(2).mean(-1) for k in range(K)]
            return torch.stack(out).permute(2, 0, 1)  # [k batch inst] -> [inst k batch]

        return [
            ("linearity_shortcut", LINEARITY.format(first="-T_k"), losses(-1.0)),
            ("linearity_shortcut", LINEARITY.format(first="T_k"), losses(1.0)),
        ]


def signed_chain(device: Any) -> tuple[WeightChain, Tensor, Tensor]:
    """3 instances, 4 -> 6 -> 5, GELU then no activation: outputs of both signs."""
    dims, n_inst = [4, 6, 5], 3
    weights = [probes._randn(n_inst, dims[n + 1], dims[n], seed=60 + n, scale=0.8, device=device) for n in range(2)]
    biases = [probes._randn(n_inst, dims[n + 1], seed=65 + n, scale=0.3, device=device) for n in range(2)]
    chain = WeightChain(weights, biases, ["gelu", None], ["W0", "W1"])
    terms = probes._randn(n_inst, 7, 6, 4, seed=68, scale=0.5, device=device)
    return chain, terms, probes._rand(9, n_inst, 4, seed=69, device=device)


def ablation_signed(ablation_losses: Callable, device: Any) -> None:
    """On a chain with no last activation (outputs of both signs): the squared change of the signed outputs."""
    chain, terms, x = signed_chain(device)
    what = "ablation_losses on a chain 4 -> 6 -> 5 with no activation after the last matrix (outputs can be negative)"
    with torch.no_grad():
        out = returned(ablation_losses(chain, terms, x), what)
        out = expect_tensor(out, what, shape=(3, 7, 9), dims="inst k batch", dtype=x.dtype, device=device)
        right, y = sol.ablation_losses(chain, terms, x), chain(x)
        runs = [mis.run_with_first(chain, chain.weights[0] - terms[:, k], x) for k in range(terms.shape[1])]
        of = lambda f: torch.stack([(f(r) - f(y)).pow(2).mean(-1) for r in runs]).permute(2, 0, 1)
    lost = (
        "on this chain the outputs can be negative (its last matrix has no activation: the contract allows None), "
        "and the sign counts: the loss is the squared change of the outputs themselves, (y_ablated - y)², "
        "averaged over output dims"
    )
    mistakes = [
        (
            "abs_difference",
            f"your values are the squared difference of |outputs|, (|y_ablated| - |y|)²: {lost}",
            of(abs),
        ),
        (
            "relu_difference",
            f"your values are the squared difference of the outputs through a ReLU (negative parts dropped): {lost}",
            of(torch.relu),
        ),
    ]
    mistakes += ablation_linearity(chain, terms, x)
    reference = call(sol.ablation_losses, chain, terms, x, pick=Tensor.detach)
    general = "each loss is the mean over output dims of (ablated - chain(x))², only W_0 replaced by W_0 - T_k"
    expect_matches(out, right, what, mistakes, dims="inst k batch", hint=general, reference=reference)


def ablation_other_chains(ablation_losses: Callable, device: Any, main: tuple | None = None) -> None:
    """The chains after the main one: a later matrix shaped like W_0ᵀ, one shaped like W_0, signed outputs, and the
    main chain (chain, terms, x) again in float64."""
    fresh.ablation_tied(ablation_losses, device)  # tied weights show
    outputs.ablation_same_shape(ablation_losses, device)  # only layer 0 ablated
    ablation_signed(ablation_losses, device)  # |y| or relu(y) compared
    if main is not None:
        f64_runs.ablation_float64(ablation_losses, *main)  # float64 in, float64 out
