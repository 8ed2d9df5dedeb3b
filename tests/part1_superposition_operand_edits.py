"""Catalogue entries shared by the forward checkers of parts 1 and 2 for an operand edited on one side only.

* Hidden order: one product reads its weights with the `d_hidden` axis permuted (W.flip(1), W.roll(±1, 1)) while the
  other reads them as they are, so the neurons written back are not the neurons read (both permuted is right).
* Bias edits: b_final changed before it is added (clamped at 0, |b|): invisible at zero input, where
  ReLU(ReLU(b)) = ReLU(b), so the zero-input probe cannot see them; the read-back on the checker's inputs does.
* Gram scale (part 1): WᵀW divided per instance by a scalar of W (its trace, its Frobenius norm).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

Mutant = tuple[str, str, Tensor]

PERMUTATIONS: tuple[tuple[str, Callable[[Tensor], Tensor]], ...] = (
    ("reversed (W.flip(1))", lambda W: W.flip(-2)),
    ("rolled by one (W.roll(1, 1))", lambda W: W.roll(1, -2)),
    ("rolled back by one (W.roll(-1, 1))", lambda W: W.roll(-1, -2)),
)


def _model(x: Tensor, b: Tensor, act: Callable[[Tensor], Tensor]) -> Callable[[Tensor, Tensor], Tensor]:
    return lambda W_in, W_out: torch.relu(
        torch.einsum("...id,idf->...if", act(torch.einsum("...if,idf->...id", x, W_in)), W_out) + b
    )


def hidden_order_mutants(
    x: Tensor, W_in: Tensor, W_out: Tensor, b: Tensor, act: Callable[[Tensor], Tensor], names: tuple[str, str]
) -> list[Mutant]:
    """One product with its weights' `d_hidden` axis permuted, the other as it is."""
    if W_in.shape[-2] < 2:
        return []
    model = _model(x, b, act)
    out: list[Mutant] = []
    for what, perm in PERMUTATIONS:
        first, second = model(perm(W_in), W_out), model(W_in, perm(W_out))
        places = [
            (f"the first product ({names[0]} x, down to d_hidden)", first),
            (f"the second product (back up with {names[1]})", second),
        ]
        if first.shape == second.shape and torch.allclose(first, second, rtol=1e-4, atol=1e-6):
            places = [("one of the two products (the first or the second: they give the same output here)", first)]
        for where, value in places:
            out.append(
                (
                    "hidden_order",
                    f"your output equals the right one with {where} reading its weights with the `d_hidden` axis "
                    f"{what}, the other product as it is: hidden neuron k is then written back through another "
                    "neuron's weights. Both products index the same neurons in the same order: no flip or roll along "
                    "d_hidden",
                    value,
                )
            )
    return out


BIAS_EDITS: tuple[tuple[str, Callable[[Tensor], Tensor]], ...] = (
    ("its negative entries set to 0 (b_final.clamp(min=0), ReLU(b_final))", torch.relu),
    ("its absolute value |b_final|", torch.abs),
    ("its positive entries set to 0 (b_final.clamp(max=0))", lambda t: t.clamp(max=0)),
)


def bias_edit_mutants(
    x: Tensor, W_in: Tensor, W_out: Tensor, b: Tensor, act: Callable[[Tensor], Tensor] = lambda t: t
) -> list[Mutant]:
    """The forward pass with b_final edited before it is added."""
    model = lambda bb: _model(x, bb, act)(W_in, W_out)
    return [
        (
            "bias_edited",
            f"your output equals the right one with b_final replaced by {what} before it is added. With every feature "
            "0 this does not show for a clamp at 0 (ReLU(ReLU(b)) = ReLU(b)); it does where the weights term is "
            "positive. Add b_final as it is: ReLU(z + b_final), negative entries included",
            model(edit(b)),
        )
        for what, edit in BIAS_EDITS
        if not torch.equal(edit(b), b)
    ]


def gram_scale_mutants(x: Tensor, W: Tensor, b: Tensor) -> list[Mutant]:
    """Part 1's forward ReLU(x G / s + b) with G = WᵀW divided per instance by a scalar s of W."""
    G = torch.einsum("idf,idg->ifg", W, W)
    scales = (
        ("its trace (Σ of the diagonal, ‖W‖²_F)", G.diagonal(dim1=-2, dim2=-1).sum(-1)),
        ("its Frobenius norm ‖WᵀW‖_F", G.flatten(1).norm(dim=-1)),
        ("its largest entry (G.amax)", G.flatten(1).amax(-1)),
    )
    return [
        (
            "gram_scaled",
            f"your output is ReLU(x G / s + b_final) with G = WᵀW divided, per instance, by {what}. The forward pass "
            "uses WᵀW unnormalised: ReLU(Wᵀ W x + b_final)",
            torch.relu(torch.einsum("...if,ifg->...ig", x, G / s.clamp_min(1e-12)[:, None, None]) + b),
        )
        for what, s in scales
    ]
