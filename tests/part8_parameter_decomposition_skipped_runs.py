"""Part 8, stochastic_reconstruction_losses: a matrix left out of a loop over the matrices.

A loop one short (range(L - 1), range(1, L), len(...) - 1 taken as the count) leaves one matrix m out:
* `layerwise_skipped`: the layerwise loss averages the runs of the other L - 1 matrices (divided by L - 1, or
  still by L), the full loss right;
* `full_skipped`: the full run leaves matrix m unmasked (the layerwise right), or both losses skip it.
Each reading names the matrix that was left out and the loop that would leave it out.
"""

from __future__ import annotations

import torch
from torch import Tensor

from tests import part8_parameter_decomposition_mistakes as mis
from utils.part8_parameter_decomposition import WeightChain

Mistakes = list[tuple[str, str, Tensor]]


def _loop(m: int, L: int) -> str:
    if m == L - 1:
        return f"a loop one short: range(L - 1), or len(chain.weights) - 1 = {L - 1} taken as the number of matrices"
    if m == 0:
        return "a loop that starts at 1: range(1, L)"
    return f"a loop or condition that leaves index {m} out"


def skipped_runs(chain: WeightChain, p: dict[str, list[Tensor]], x: Tensor) -> Mistakes:
    """(full, layerwise) with matrix m left out of the layerwise runs, of the full run, or of both, for every m."""
    with torch.no_grad():
        target, L = chain(x), len(chain.weights)
        loss = lambda layers: (mis.masked_run(chain, p, x, layers)[0] - target).pow(2).mean((0, 2)).sum()
        singles = [loss({n}) for n in range(L)]
        full = loss(set(range(L)))
        out: Mistakes = []
        for m in range(L):
            kept = [n for n in range(L) if n != m]
            rest, names = sum(singles[n] for n in kept), ", ".join(map(str, kept))
            rule = (
                f"run l masks matrix l alone for every l in range(len(chain.weights)) (all L = {L}), and the layerwise "
                f"loss is the sum of those L losses divided by L"
            )
            for d in (L - 1, L):
                hint = (
                    f"your layerwise loss is the sum of the runs that mask matrices {names} divided by {d}: matrix {m} "
                    f"is never masked on its own ({_loop(m, L)}); {rule}"
                )
                out.append(("layerwise_skipped", hint, torch.stack([full, rest / d])))
            full_m = loss(set(kept))
            hint = (
                f"your full loss leaves matrix {m} unmasked (its run masks matrices {names} only: {_loop(m, L)}); the "
                f"full run masks every one of the L = {L} matrices at once"
            )
            out.append(("full_skipped", hint, torch.stack([full_m, sum(singles) / L])))
            both = f"{hint}, and your layerwise loss leaves it out too (the mean of the other runs)"
            out.append(("full_skipped", both, torch.stack([full_m, rest / (L - 1)])))
        return out
