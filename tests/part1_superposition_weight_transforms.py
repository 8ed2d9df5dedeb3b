"""A toy model's forward pass with its weights transformed before use, as catalogue entries for both parts' forward
checkers: each layer's weights (or both) taken as |W|, ReLU(W), W², or normalised along one axis, and (part 1) the
Gram matrix WᵀW edited (its diagonal set to 1 or to 0, |WᵀW|, ReLU(WᵀW)).

Each entry names the transform and the product it was seen in, from the checker's own inputs; an entry that
coincides with another catalogue entry on these inputs is dropped with `novel` (the other entry names it).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from tests.part1_superposition_operand_edits import bias_edit_mutants, gram_scale_mutants, hidden_order_mutants

Mutant = tuple[str, str, Tensor]


def _unit(W: Tensor, dim: int) -> Tensor:
    return W / W.norm(dim=dim, keepdim=True).clamp_min(1e-8)


# (description of the transformed weights, transform), W in the read layout [inst d_hidden feats]
TRANSFORMS: tuple[tuple[str, Callable[[Tensor], Tensor]], ...] = (
    ("|W| (W.abs())", torch.abs),
    ("ReLU(W) (its negative entries zeroed)", torch.relu),
    ("W² (each entry squared)", torch.square),
    ("W normalised along `d_hidden` (unit columns, one per feature)", lambda W: _unit(W, -2)),
    ("W normalised along `feats` (unit rows, one per hidden neuron)", lambda W: _unit(W, -1)),
)


def _same(a: Tensor, b: Tensor) -> bool:
    return a.shape == b.shape and torch.allclose(a, b, rtol=1e-4, atol=1e-6)


def novel(entries: list[Mutant], known: list[Mutant]) -> list[Mutant]:
    """`entries` less those equal on these inputs to one of `known` or to an earlier entry (an edit that coincides
    with an existing, more specific catalogue entry: that one names it)."""
    kept: list[Mutant] = []
    for entry in entries:
        if not any(_same(entry[2], other[2]) for other in [*known, *kept]):
            kept.append(entry)
    return kept


def _forward_with(x: Tensor, b: Tensor, act: Callable[[Tensor], Tensor]) -> Callable[[Tensor, Tensor], Tensor]:
    """The forward pass ReLU(W_out act(W_in x) + b) on the checker's x and b, as a function of the two weights."""
    return lambda W_in, W_out: torch.relu(
        torch.einsum("...id,idf->...if", act(torch.einsum("...if,idf->...id", x, W_in)), W_out) + b
    )


def weight_transform_mutants(
    x: Tensor,
    W_in: Tensor,
    W_out: Tensor,
    b: Tensor,
    act: Callable[[Tensor], Tensor] = lambda t: t,
    names: tuple[str, str] = ("W", "W"),
    formula: str = "",
) -> list[Mutant]:
    """The forward pass with the first product's weights, the second's, or both transformed; `names` are the
    parameters each product reads (part 1: W both times), `formula` the reference written out for the hints."""
    model = _forward_with(x, b, act)
    first, second = (
        f"the first product ({names[0]} x, down to d_hidden)",
        f"the second product (back up with {names[1]})",
    )
    either = (
        f"the first product ({names[0]} x) or the second (back up with {names[1]}): the two give exactly the same "
        "output here (a positive factor per hidden neuron passes through to the output unchanged), so either one"
    )
    out: list[Mutant] = []
    for what, f in TRANSFORMS:
        in_first, in_second = model(f(W_in), W_out), model(W_in, f(W_out))
        places = [(either, in_first)] if _same(in_first, in_second) else [(first, in_first), (second, in_second)]
        for where, value in (*places, ("both products", model(f(W_in), f(W_out)))):
            hint = f"{where} used {what}: use the weights as they are, with no transform" + (
                f" ({formula})" if formula else ""
            )
            out.append(("weight_transform", hint, value))
    return out + hidden_order_mutants(x, W_in, W_out, b, act, names) + bias_edit_mutants(x, W_in, W_out, b, act)


def gram_mutants(x: Tensor, W: Tensor, b: Tensor) -> list[Mutant]:
    """Part 1's forward written as ReLU(x G + b) with the Gram matrix G = WᵀW [inst feats feats] edited."""
    G = torch.einsum("idf,idg->ifg", W, W)
    diag = torch.diag_embed(G.diagonal(dim1=-2, dim2=-1))
    eye = torch.eye(G.shape[-1], dtype=G.dtype, device=G.device)
    edits = (
        ("its diagonal set to 1 (as if every column of W had norm 1)", G - diag + eye),
        ("its diagonal set to 0 (each feature's own term ‖W_f‖² x_f dropped)", G - diag),
        ("its absolute values |WᵀW|", G.abs()),
        ("ReLU(WᵀW) (negative interference zeroed)", torch.relu(G)),
        (
            "its columns reversed (a .flip(-1) on G or G.mT: output feature g gets feature n_feats - 1 - g's term)",
            G.flip(-1),
        ),
        ("its rows reversed (a .flip(-2): the input features read in reverse order)", G.flip(-2)),
        ("both its axes reversed (.flip((-2, -1)))", G.flip((-2, -1))),
        *[
            (
                f"only one triangle kept ({name}, or the other one with the product taken the other way round): "
                "each pair of features then interferes in one direction only, though WᵀW is symmetric",
                tri(G),
            )
            for name, tri in (("torch.triu(WᵀW)", torch.triu), ("torch.tril(WᵀW)", torch.tril))
        ],
    )
    return [
        (
            "gram_edit",
            f"your output is ReLU(x G + b_final) with the Gram matrix G = WᵀW changed: {what}. The forward pass uses "
            "WᵀW exactly as the two products give it, ReLU(Wᵀ W x + b_final), diagonal and sign included",
            torch.relu(torch.einsum("...if,ifg->...ig", x, Gx) + b),
        )
        for what, Gx in edits
    ]


def reshape_mutants(
    x: Tensor,
    W_in: Tensor,
    W_out: Tensor,
    b: Tensor,
    act: Callable[[Tensor], Tensor] = lambda t: t,
    names: tuple[str, str] = ("W", "W"),
    formula: str = "",
) -> list[Mutant]:
    """The forward pass with a reshape (or .view) where a transpose belongs: either product's weights [inst d feats]
    read as W.reshape(inst, feats, d) in the transposed layout [inst feats d], or both. A reshape keeps the memory
    order, so the entries land in the wrong places (unlike .transpose / .mT) while every shape still fits."""
    model = _forward_with(x, b, act)
    flip = lambda W: W.reshape(W.shape[0], W.shape[2], W.shape[1]).transpose(-1, -2)  # reshape read as the transpose
    k, d, f = W_in.shape
    out: list[Mutant] = []
    for where, Wi, Wo in (
        (f"the first product (with {names[0]})", flip(W_in), W_out),
        (f"the second product (with {names[1]}ᵀ)", W_in, flip(W_out)),
        ("both products", flip(W_in), flip(W_out)),
    ):
        hint = (
            f"{where} reads the weights reshaped where a transpose belongs: your output is what "
            f"W.reshape({k}, {f}, {d}) (or .view) gives in place of the transposed W [inst feats d_hidden]. A reshape "
            "keeps the memory order and only relabels the sizes, so the entries land in the wrong places; swap the "
            "axes with W.transpose(-1, -2) (or .mT), or name the axes in einsum" + (f" ({formula})" if formula else "")
        )
        out.append(("reshape_transpose", hint, model(Wi, Wo)))
    return out


def layout_reshape_mutants(x: Tensor, W: Tensor, b: Tensor, formula: str) -> list[Mutant]:
    """Part 1's forward with an activation computed in a transposed layout and then reshaped (not transposed) back:
    the hidden vector einsum'd to [... d_hidden inst] or the output to [... feats inst], then .reshape(..., inst, n)."""
    h = torch.einsum("...if,idf->...id", x, W)
    out: list[Mutant] = []
    for where, o in (
        (
            "the hidden vector (W x, computed as [... d_hidden inst])",
            torch.einsum("...id,idf->...if", h.transpose(-1, -2).reshape(h.shape), W),
        ),
        ("the output (Wᵀ h, computed as [... feats inst])", torch.einsum("...id,idf->...fi", h, W).reshape(x.shape)),
    ):
        out.append(
            (
                "reshape_transpose",
                f"your output equals the right one with {where} put back into [... inst n] by .reshape / .view "
                "instead of a transpose: a reshape keeps the memory order and only relabels the sizes, so values land "
                "in other instances and features. Keep `inst` before the feature axis in the einsum output "
                "('... inst feats'), or swap axes with .transpose(-1, -2)" + (f" ({formula})" if formula else ""),
                torch.relu(o + b),
            )
        )
    return out


def instance_mixup_mutants(x: Tensor, W: Tensor, b: Tensor, formula: str) -> list[Mutant]:
    """Part 1's forward with one product (or both) reading another instance's weights: W rolled or flipped along the
    instance axis (W.roll(1, 0), W.roll(-1, 0), W.flip(0)), so instance k goes through instance k ∓ 1's W, or the
    mean over instances (W.mean(0)) for every instance."""
    if W.shape[0] < 2:
        return []
    model = _forward_with(x, b, lambda t: t)
    out: list[Mutant] = []
    for what, g in (
        ("W.roll(1, 0): instance k uses instance k - 1's W", lambda w: w.roll(1, 0)),
        ("W.roll(-1, 0): instance k uses instance k + 1's W", lambda w: w.roll(-1, 0)),
        ("W.flip(0): the instances' weights in reverse order", lambda w: w.flip(0)),
        ("W.mean(0): every instance uses the mean of the instances' W", lambda w: w.mean(0, keepdim=True).expand_as(w)),
    ):
        for where, Wi, Wo in (
            ("the first product (W x, down to d_hidden)", g(W), W),
            ("the second product (back up with Wᵀ)", W, g(W)),
            ("both products", g(W), g(W)),
        ):
            hint = (
                f"your output is the right one with {where} reading another instance's weights, {what}. Each "
                "instance is its own model: both products use that instance's W, with the `inst` axis aligned "
                f"(no roll, flip or shift along dim 0)" + (f" ({formula})" if formula else "")
            )
            out.append(("weights_other_instance", hint, model(Wi, Wo)))
    return out


def hidden_normalised_mutants(x: Tensor, W: Tensor, b: Tensor, formula: str) -> list[Mutant]:
    """Part 1's forward with the hidden vector h = W x rescaled before going back up: to unit norm over d_hidden
    (F.normalize(h, dim=-1)), or over the instances."""
    return [
        (
            "hidden_normalised",
            f"your output is the right one with the hidden vector h = W x divided by its norm over {axis} "
            f"({code}) before the second product. The model keeps h as it is: no normalisation between the "
            "products" + (f" ({formula})" if formula else ""),
            _forward_with(x, b, lambda t, d=dim: _unit(t, d))(W, W),
        )
        for axis, code, dim in (
            ("`d_hidden`", "F.normalize(h, dim=-1)", -1),
            ("the instances", "F.normalize(h, dim=-2)", -2),
        )
    ]


def hidden_bounded_mutants(x: Tensor, W: Tensor, b: Tensor, formula: str) -> list[Mutant]:
    """Part 1's forward with a bounded nonlinearity on the hidden vector h = W x (tanh, clamp to [-1, 1], sigmoid):
    part 1's hidden layer is linear."""
    return [
        (
            "hidden_bounded",
            f"your output is the right one with {what} applied to the hidden vector h = W x before the second "
            "product. Part 1's hidden layer is linear: no nonlinearity between the products, only the output ReLU"
            + (f" ({formula})" if formula else ""),
            _forward_with(x, b, act)(W, W),
        )
        for what, act in (
            ("tanh", torch.tanh),
            ("a clamp to [-1, 1] (h.clamp(-1, 1), F.hardtanh)", lambda t: t.clamp(-1, 1)),
            ("a sigmoid", torch.sigmoid),
        )
    ]


def part1_weight_mutants(x: Tensor, W: Tensor, b: Tensor, formula: str) -> list[Mutant]:
    """Part 1's forward (W read by both products): the transforms, the Gram edits, the reshapes, another instance's
    weights, a normalised hidden vector and a bounded one."""
    transformed = weight_transform_mutants(x, W, W, b, formula=formula)
    return (
        transformed
        + gram_mutants(x, W, b)
        + gram_scale_mutants(x, W, b)
        + reshape_mutants(x, W, W, b, formula=formula)
        + layout_reshape_mutants(x, W, b, formula)
        + instance_mixup_mutants(x, W, b, formula)
        + hidden_normalised_mutants(x, W, b, formula)
        + hidden_bounded_mutants(x, W, b, formula)
    )
