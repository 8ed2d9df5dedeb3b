"""Part 8: one instance's (or one example's) input used for all, in ablation_losses.

`x[:, :1].expand_as(x)` (instance 0's input broadcast to every instance), the last instance's, or one example's
input for the whole batch: the right losses recomputed on that input, each named by what it reads. The inputs'
instances see different data, so each reading differs from the right losses.
"""

from __future__ import annotations

from torch import Tensor

from tests import part8_parameter_decomposition_mistakes as mis
from utils.part8_parameter_decomposition import WeightChain

Mistakes = list[tuple[str, str, Tensor]]


def ablation_one_input(chain: WeightChain, terms: Tensor, x: Tensor) -> Mistakes:
    """The right losses computed on x with one instance's (or example's) input copied into every slot."""
    n_batch, n_inst = x.shape[0], x.shape[1]
    base = (
        "each instance runs on its own input x[:, i] (and each example on its own row): index x per instance, not "
        "a slice of length 1 that broadcasts"
    )
    reads = {
        n_inst - 1: f"the last instance's input x[:, {n_inst - 1}] (x[:, -1:])",
        0: "instance 0's input x[:, 0] (x[:, :1])",
    }
    out: Mistakes = []
    for i, what in reads.items():
        if n_inst > 1:
            value = mis.ablation_candidates(chain, terms, x[:, i : i + 1].expand_as(x))[0]
            out.append(
                ("one_instance_input", f"your losses are those of {what} used for every instance: {base}", value)
            )
    if n_batch > 1:
        value = mis.ablation_candidates(chain, terms, x[:1].expand_as(x))[0]
        out.append(
            (
                "one_example_input",
                f"your losses are those of example 0's input x[0] used for every example: {base}",
                value,
            )
        )
    return out
