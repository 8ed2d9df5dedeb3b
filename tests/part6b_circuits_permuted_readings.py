"""Generic readings of part 6b outputs that hold the right numbers rearranged or transformed: target rows of the
adjacency matrix that are the right rows in another order, a token view turned into ranks, rescaled by a named norm
of the model's matrices, or turned into a probability change, and a band's tuple returned in another order."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from tests.checking import fail


def rows_permuted(got: Tensor, want: Tensor, graph: Any, rows: list[int]) -> None:
    """The target rows are exactly the right rows, each once, but in another order: rows and targets misaligned."""
    if got.shape != want.shape or len(rows) < 2:
        return
    g, w = got.detach().double().cpu(), want.detach().double().cpu()
    tol = 1e-3 * w.abs().amax(-1) + 2e-4
    close = ((g[:, None, :] - w[None, :, :]).abs() <= tol[None, :, None] + 1e-3 * w.abs()[None]).all(-1)
    if not (close.sum(-1) == 1).all() or not (close.sum(0) == 1).all():
        return  # not each row matching exactly one right row: not a permutation (or duplicate rows)
    source = close.float().argmax(-1)
    moved = (source != torch.arange(len(rows))).nonzero().flatten().tolist()
    if not moved:
        return
    i = moved[0]
    fail(
        f"{len(moved)}/{len(rows)} target rows hold another target's edges: the rows are the right ones in another "
        f"order (e.g. the row of {graph.label(rows[i])} holds the edges into {graph.label(rows[int(source[i])])})",
        "the rows and the targets are misaligned: row t of the adjacency matrix must hold the edges into node t, in "
        "the graph's node order (latents, then errors, tokens and logits); build the list of targets in the same order "
        "as the rows you fill (e.g. latents first, then logits, not concatenated the other way round)",
        code="rows_misaligned",
    )


def view_ranks(out: Tensor, expected: Tensor, what: str) -> None:
    """A token view replaced by the ranks of its values (argsort().argsort(), 0- or 1-based, either direction)."""
    if out.shape != expected.shape or out.ndim != 1 or out.numel() < 3:
        return
    a = out.detach().double().cpu()
    if not torch.equal(a, a.round()):
        return
    order = expected.detach().double().cpu().argsort().argsort().double()
    n = float(out.numel())
    for base in (0.0, 1.0):
        for descending, ranks in ((False, order + base), (True, n - 1 - order + base)):
            if (a - ranks).abs().le(0).float().mean() > 0.99:  # ties may be ranked either way
                fail(
                    f"{what} holds the ranks of the right values ({'largest' if descending else 'smallest'} = "
                    f"{int(base)}), not the values themselves",
                    "return the raw linear values (argsort().argsort() turns them into ranks and loses their "
                    "size); rank or topk them afterwards when you need the top tokens",
                    code="ranks",
                )


def view_named_factor(out: Tensor, expected: Tensor, what: str, model: Any, tc: Any) -> None:
    """The right token view times a constant that is a named norm of the model's or transcoder's matrices (or 1/it)."""
    if out.shape != expected.shape or not out.is_floating_point():
        return
    a, e = out.detach().double().cpu(), expected.detach().double().cpu()
    ratio = float((a * e).sum() / (e * e).sum().clamp_min(1e-30))
    if not torch.allclose(a, ratio * e, rtol=1e-3, atol=1e-4) or abs(ratio - 1) < 1e-3:
        return
    own_factor(ratio, e, what)
    if ratio <= 0:
        return
    mats = {"W_E": model.W_E, "W_U": model.W_U.T, "W_enc": tc.W_enc.T, "W_dec": tc.W_dec}
    named = {}
    for name, m in mats.items():
        rows = m.detach().double().cpu().norm(dim=-1)
        axis = "column" if name in ("W_U", "W_enc") else "row"
        named[f"the mean L2 norm of a {name} {axis}"] = float(rows.mean())
        named[f"the RMS norm of the {name} {axis}s"] = float(rows.pow(2).mean().sqrt())
        named[f"the Frobenius norm of {name}"] = float(m.detach().double().norm())
    for name, v in named.items():
        for power, how in ((-1, "divided by"), (1, "multiplied by")):
            if v > 0 and abs(ratio - v**power) <= 2e-3 * abs(ratio):
                fail(
                    f"{what} is the right vector {how} {name}: your values are {ratio:.4g} × the expected ones, and "
                    f"{name} is {v:.4g}",
                    "no rescaling belongs here: the view is the plain matrix product of the formula (a guessed "
                    "LayerNorm scale or normalisation changes the size of every value)",
                    code="named_factor",
                )


def own_factor(ratio: float, e: Tensor, what: str) -> None:
    """The right values divided by (or times) one of their own statistics: their sum, mean, L2 norm, max, |max|."""
    named = {
        "their sum": e.sum(),
        "their mean": e.mean(),
        "their L2 norm": e.norm(),
        "their sum of absolute values": e.abs().sum(),
        "their largest value": e.max(),
        "their largest absolute value": e.abs().max(),
        "their standard deviation": e.std(),
    }
    for name, v in named.items():
        v = float(v)
        for power, how in ((-1, "divided by"), (1, "multiplied by")):
            if v != 0 and abs(ratio - v**power) <= 2e-3 * abs(ratio):
                fail(
                    f"{what} is the right vector {how} {name} ({v:.4g}): your values are {ratio:.4g} × the "
                    f"expected ones",
                    "no rescaling belongs here: return the plain matrix product of the formula (dividing by the "
                    "values' own sum or norm turns them into shares and changes the size and sign of every value)",
                    code="own_factor",
                )


def view_probability_change(out: Tensor, expected: Tensor, what: str, model: Any) -> None:
    """The logit effect e turned into a probability change softmax(b_U + e) - softmax(b_U) (or softmax(e) - uniform)."""
    if out.shape != expected.shape or not out.is_floating_point():
        return
    a, e = out.detach().double().cpu(), expected.detach().double().cpu()
    b = model.b_U.detach().double().cpu()
    readings = (
        ("softmax(b_U + e) − softmax(b_U)", (b + e).softmax(-1) - b.softmax(-1)),
        ("softmax(e) − softmax(0)", e.softmax(-1) - 1 / e.numel()),
        ("softmax(e)", e.softmax(-1)),
        ("softmax(b_U + e)", (b + e).softmax(-1)),
    )
    for formula, value in readings:
        if torch.allclose(a, value, rtol=1e-3, atol=1e-7) and not torch.allclose(a, e, rtol=1e-3, atol=1e-4):
            fail(
                f"{what} is {formula} of the right logit effect e: a change in probabilities, not in logits",
                "the logit effect is the direct change in each token's LOGIT, W_dec[latent] @ W_U, linear and "
                "without a softmax (probabilities depend on the other logits and shrink the values)",
                code="probabilities",
            )


def band_tuple_order(group: Any, j: int) -> None:
    """A band returned as (seq_idx, pos_idx, values) or another order: exactly one member floating point, not first."""
    floats = [k for k, t in enumerate(group) if isinstance(t, Tensor) and t.is_floating_point()]
    ints = [k for k, t in enumerate(group) if isinstance(t, Tensor) and not t.is_floating_point()]
    if len(floats) != 1 or len(ints) != 2 or floats[0] == 0:
        return
    names = ["seq_idx", "pos_idx"]
    said = ", ".join("values" if k == floats[0] else names.pop(0) for k in range(3))
    fail(
        f"band {j}'s tuple has its floating-point member (the values) at position {floats[0]}, and integer indices "
        f"before it: a tuple in another order, ({said})?",
        "return each band as (values, seq_idx, pos_idx), in that order",
        code="outputs_order",
    )


def token_view(out: Tensor, expected: Tensor, what: str, model: Any, tc: Any, relations: Any) -> None:
    """The token-view readings: `relations` (sorted, gated, normalised, standardised), ranks, a named-norm factor, and
    (for the logit side, which has b_U) a probability change."""
    relations(out, expected, what)
    view_ranks(out, expected, what)
    view_named_factor(out, expected, what, model, tc)
    view_named_offset(out, expected, what, model, tc)
    if what.startswith("latent_logit_effect"):
        view_probability_change(out, expected, what, model)


def view_named_offset(out: Tensor, expected: Tensor, what: str, model: Any, tc: Any) -> None:
    """The right token view plus one number for every token that is ± (or 2×) a named bias of the latent: its encoder
    bias b_enc[latent], the decoder bias read through its encoder column, its threshold."""
    if out.shape != expected.shape or not out.is_floating_point() or "latent " not in what:
        return
    a, e = out.detach().double().cpu(), expected.detach().double().cpu()
    shift = float((a - e).mean())
    if abs(shift) < 1e-4 or not torch.allclose(a, e + shift, rtol=1e-3, atol=1e-4):
        return
    i = int(what.split("latent ")[-1].split()[0])
    named = {
        "tc.b_enc[latent] (the encoder bias)": tc.b_enc[i],
        "tc.b_dec @ tc.W_enc[:, latent] (the decoder bias read through the encoder)": tc.b_dec @ tc.W_enc[:, i],
    }
    if getattr(tc, "threshold", None) is not None:
        named["tc.threshold[latent] (the JumpReLU threshold)"] = tc.threshold[i]
    for name, v in named.items():
        v = float(v.detach().double().cpu()) if v.dim() == 0 else None
        for k, how in ((1, "+"), (-1, "−"), (2, "+ 2 ×"), (-2, "− 2 ×")):
            if v is not None and abs(v) > 1e-4 and abs(shift - k * v) <= 2e-3 * abs(shift) + 1e-5:
                fail(
                    f"{what}: your values are the expected ones shifted by {shift:.4g} = {how} {name} "
                    f"({float(v):.4g}) at every token",
                    f"{name.split(' (')[0]} is a constant of the latent, the same for every token: the view is the "
                    "plain matrix product of the formula, with no bias added or subtracted (a constant shift says "
                    "nothing about which tokens matter)",
                    code="bias_offset",
                )


def rows_identical(got: Tensor, want: Tensor, graph: Any, rows: list[int]) -> None:
    """Every target row holds the same edges where the right rows differ: one gradient for all the targets (of their
    sum, named when the common row is the sum of the right rows) instead of one per target."""
    if got.shape != want.shape or len(rows) < 2:
        return
    g, w = got.detach().double().cpu(), want.detach().double().cpu()
    close = lambda x, y: bool(torch.allclose(x, y, rtol=1e-3, atol=2e-4))
    if not close(g, g[:1].expand_as(g)) or close(w, w[:1].expand_as(w)) or not g.abs().max() > 0:
        return
    seen = f"all {len(rows)} target rows of the adjacency hold the same edges, where the right rows differ"
    how = (
        "one gradient per target: a loop over the targets with torch.autograd.grad(target, ..., retain_graph=True), "
        "or torch.func.jacrev; a single backward gives one row for all of them"
    )
    if close(g[0], w.sum(0)):
        fail(
            f"{seen}: each is the sum of the right rows, the gradient of the sum of all the targets (one backward "
            "or autograd.grad of targets.sum())",
            how,
            code="summed_targets",
        )
    match = [k for k in range(len(rows)) if close(g[0], w[k])]
    of = f" (they are the edges into {graph.label(rows[match[0]])})" if match else ""
    fail(
        seen + of,
        "possible causes: one gradient taken for all the targets (of their sum or of one target) and written into "
        "every row, or a row variable that never changes in the loop; take " + how,
        code="identical_rows",
    )
