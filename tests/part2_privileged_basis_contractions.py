"""Slips inside the contractions of part 2's two-layer forward passes, as catalogue mutants.

Each layer is a contraction (a sum of products over one axis). Two slips change what is summed without changing any
shape, so no shape check sees them and the bias-only probe reads them only as "the weights term differs":

* the contracted axis spelled differently in the two inputs of an einsum (a letter typo, 'd' / 'd_hidden'): einsum
  then sums each input over its own copy of the axis, a product of two sums instead of a sum of products;
* the nonlinearity applied to each product term before the sum (relu(x[..., None, :] * W).sum(-1)).

Both are written for either layer, so a slip in the read (hidden) layer and one in the write (output) layer are told
apart by the checker's generic weights (both signs, every size different).
"""

from __future__ import annotations

import torch
from torch import Tensor

from tests.part1_superposition_mistakes import Mutant, down, up
from tests.reshape_scrambles import regrouped_candidates

relu = torch.relu


def contraction_mutants(x: Tensor, W_in: Tensor, W_out: Tensor, b: Tensor, read: str, write: str) -> list[Mutant]:
    """The forward pass ReLU(W_outᵀ ReLU(W_in x) + b) with one contraction slip (W_out in the read layout [inst d
    feats]); `read` and `write` are the learner's names of the two weight matrices ("W" twice for a tied model)."""
    h = relu(down(x, W_in))
    split_read = x.sum(-1, keepdim=True) * W_in.sum(-1)  # [... inst 1] · [inst d]
    split_write = h.sum(-1, keepdim=True) * W_out.sum(-2)  # [... inst 1] · [inst feats]
    per_term_read = relu(x[..., None, :] * W_in).sum(-1)  # [... inst d]
    per_term_write = (h[..., :, None] * W_out).relu().sum(-2)  # [... inst feats]
    # The hidden layer computed as [... d_hidden inst] and reshaped (not transposed) to [... inst d_hidden].
    regrouped = h.mT.reshape(h.shape) if h.shape[-1] != h.shape[-2] else None
    typo = (
        "{axis} has two different names in the two inputs of the {layer} einsum (a letter typo, e.g. 'd' in one "
        "and 'd_hidden' in the other): einsum then sums each input over its own copy of the axis, giving a product "
        "of two sums, {got}, instead of the sum of products {right}. Spell the shared axis the same in both inputs"
    )
    per_term = (
        "the ReLU is applied to each product term before the sum over {axis} ({code}): a neuron's ReLU acts on its "
        "whole weighted sum, {right}"
    )
    w = f"{write}[d, f]" if write == read else f"{write}[f, d]"  # the tied W is [d f], the computation W2 [f d]
    return [
        (
            "axis_name_mismatch",
            typo.format(
                axis="`feats`",
                layer="hidden-layer",
                got=f"(Σ_f x_f)(Σ_f {read}[d, f])",
                right=f"Σ_f {read}[d, f] x_f",
            ),
            relu(up(relu(split_read), W_out) + b),
        ),
        (
            "axis_name_mismatch",
            typo.format(
                axis="`d_hidden`",
                layer="output",
                got=f"(Σ_d h_d)(Σ_d {w})",
                right=f"Σ_d {w} h_d",
            ),
            relu(split_write + b),
        ),
        (
            "relu_per_term",
            per_term.format(
                axis="features",
                code=f"relu(x[..., None, :] * {read}).sum(-1)",
                right=f"ReLU(Σ_f {read}[d, f] x_f), the ReLU outside the sum",
            ),
            relu(up(per_term_read, W_out) + b),
        ),
        (
            "relu_per_term",
            f"your output equals the right one with a ReLU on the output weights: either on {write} itself "
            f"(F.relu(self.{write}) in the output product) or on each product term h_d · {w} before the sum over "
            "the hidden neurons (d_hidden); the two give the same values, since h = ReLU(...) ≥ 0. The weights "
            "enter as they are (they may be negative), and the output's ReLU acts on the whole weighted sum, "
            "ReLU(Σ_d weight · h_d + b_final), after the sum and the bias",
            relu(per_term_write + b),
        ),
    ] + ([] if regrouped is None else [_regrouped_hidden(relu(up(regrouped, W_out) + b))])


def _regrouped_hidden(value: Tensor) -> Mutant:
    return (
        "hidden_reshaped_not_transposed",
        "your output is the right one computed from hidden activations laid out [... d_hidden inst] (e.g. an einsum "
        "with output '... d_hidden inst') and then reshaped (or viewed) to [... inst d_hidden]: reshape keeps the "
        "numbers in memory order, it does not move axes, so each instance's hidden vector mixes the values of "
        "several instances. Swap the axes with .transpose(-1, -2) (or einops.rearrange), or write the einsum's "
        "output as '... inst d_hidden' directly",
        value,
    )


def regrouped_weight_mutants(x: Tensor, W_in: Tensor, W_out: Tensor, b: Tensor) -> list[Mutant]:
    """The computation model's forward pass with one weight replaced by its reshape-where-a-transpose-belongs
    scramble, by part 3's shared `regrouped_candidates` (W2 itself reshaped is the catalogue's `reshaped_W2`):
    W1 or W1.mT, and W2.mT ([inst d_hidden feats], `W_out` here), reshaped and used as if transposed."""
    forward = lambda W1, W2t: relu(up(relu(down(x, W1)), W2t) + b)
    return [
        *regrouped_candidates(W_in, lambda W: forward(W, W_out), "W1", ("inst", "d_hidden", "feats")),
        *regrouped_candidates(W_in.mT, lambda Wm: forward(Wm.mT, W_out), "W1.mT", ("inst", "feats", "d_hidden")),
        *regrouped_candidates(W_out, lambda Wt: forward(W_in, Wt), "W2.mT", ("inst", "d_hidden", "feats")),
    ]
