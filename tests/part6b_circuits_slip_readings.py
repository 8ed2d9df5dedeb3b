"""Readings of small slips in part 6b's attribution edges, node influence and quantile examples: target rows left
empty, rows rescaled by a per-target factor, a gradient used for the wrong node kind, identity terms in the path
series, and band choices that let out-of-band examples win or leave position 0 in for some sequences."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from tests import part6b_circuits_band_masks as band_masks
from tests import part6b_circuits_damped_rows as damped_rows
from tests import part6b_circuits_extra_mistakes as extra
from tests import part6b_circuits_hints as hints
from tests import part6b_circuits_influence_observed as observed
from tests import part6b_circuits_mistakes as known
from tests import part6b_circuits_permuted_readings as permuted
from tests import part6b_circuits_probes as probes
from tests import part6b_circuits_readbacks as readbacks
from tests import part6b_circuits_relative_targets as relative
from tests import part6b_circuits_term_readings as terms
from tests import part6b_circuits_token_values as token_values
from tests.checking import fail
from tests.part6b_circuits_influence_pairs import influence_pairs

CLOSE = {"rtol": 1e-3, "atol": 2e-4}


# ------------------------------------------------------------------------------------------------ attribution_edges
def edge_rows(out: Tensor, direct: Tensor, graph: Any, values: Tensor, rows: list[int], run: tuple = ()) -> None:
    """Leaf targets (extra.leaf_targets), then two row-wise readings: target rows that are all zero where the right
    ones are not, and rows that are the right ones times a per-target factor (named when it is 1 / the target)."""
    extra.leaf_targets(out, values[: graph.n_latents], graph.n_latents)
    if run:
        readbacks.edge_readbacks(out, direct, *run, graph)
    got, want = out[rows], direct[rows]
    permuted.rows_permuted(got, want, graph, rows)
    permuted.rows_identical(got, want, graph, rows)
    relative.relative_logits(got, want, graph)
    if run:
        token_values.token_values(got, want, run, graph)
    empty = (got.abs().amax(-1) == 0) & (want.abs().amax(-1) > 0)
    if empty.any():
        n_lat = graph.n_latents
        lat_empty = empty[:n_lat]
        last = graph.latent_pos == graph.n_pos - 1
        rest_right = torch.allclose(got[~empty], want[~empty], **CLOSE)
        where = "; the other rows are right" if rest_right else "; some other rows differ too"
        if lat_empty.any() and not empty[n_lat:].any() and bool((lat_empty == ~last.to(lat_empty.device)).all()):
            fix = "every latent at every position is a target, not only the last position's"
        else:
            fix = "every latent and every logit node is a target: fill each of their rows"
        labels = ", ".join(graph.label(rows[i]) for i in empty.nonzero().flatten()[:4].tolist())
        fail(
            f"rows of {int(empty.sum())} targets are all zero ({int(lat_empty.sum())} latent, "
            f"{int(empty[n_lat:].sum())} logit; e.g. {labels}), where the right rows are not{where}",
            fix,
            code="empty_rows",
        )
    norm = (want * want).sum(-1)
    factor = (got * want).sum(-1) / norm.clamp_min(1e-30)
    if not (norm > 0).all() or not torch.allclose(got, factor[:, None] * want, **CLOSE):
        return
    if torch.allclose(factor, torch.ones_like(factor), rtol=1e-3, atol=1e-4):
        return
    if torch.allclose(factor * values, torch.ones_like(factor), rtol=1e-3, atol=1e-3):
        fail(
            "each row of the adjacency is the right one divided by its target's value (the edges are shares of the "
            "target)",
            "an edge is the target's change from its source, d(target)/d(source) · source, in the target's own "
            "units: don't divide a row by the target's value",
            code="row_shares",
        )
    fail(
        f"each row of the adjacency is the right one times a factor of its own (from {float(factor.min()):.4g} to "
        f"{float(factor.max()):.4g}), not 1",
        "an edge is d(target)/d(source) · source, unscaled: is each row multiplied or divided by something of its "
        "target (its value, a norm, a sum of its edges)?",
        code="row_factor",
    )


def gradient_swaps(model: Any, tc: Any, frozen: Any, graph: Any) -> list[tuple[str, str, Tensor]]:
    """Token and error nodes both have a [n_pos, d_model] gradient: the error edges built from the token gradient
    (or the token edges from the error gradient), a copy-paste slip."""
    pos, idx = graph.latent_pos, graph.latent_idx
    by_token = torch.zeros(graph.n_nodes, graph.n_nodes, device=frozen.embeds.device)
    by_error, both = by_token.clone(), by_token.clone()
    with torch.enable_grad():
        embeds = frozen.embeds.detach().clone().requires_grad_(True)
        error = frozen.error.detach().clone().requires_grad_(True)
        vals = frozen.acts[pos, idx].detach().clone().requires_grad_(True)
        latents = torch.zeros_like(frozen.acts)
        latents[pos, idx] = vals
        pre, logits = known.variant_forward(model, tc, frozen, embeds, latents, error)
        targets = torch.cat([pre[pos, idx], logits[-1, graph.logit_ids]])
        for row, t in zip(known.target_rows(graph), targets, strict=True):
            gv, ge, gm = torch.autograd.grad(t, (vals, error, embeds), retain_graph=True, allow_unused=True)
            gv = torch.zeros_like(vals) if gv is None else gv
            ge = torch.zeros_like(error) if ge is None else ge
            for A in (by_token, by_error, both):
                A[row, graph.nodes("latent")] = gv * vals.detach()
            by_token[row, graph.nodes("error")] = (gm * error.detach()).sum(-1)
            by_token[row, graph.nodes("token")] = (gm * embeds.detach()).sum(-1)
            by_error[row, graph.nodes("error")] = (ge * error.detach()).sum(-1)
            by_error[row, graph.nodes("token")] = (ge * embeds.detach()).sum(-1)
            both[row, graph.nodes("error")] = (gm * error.detach()).sum(-1)
            both[row, graph.nodes("token")] = (ge * embeds.detach()).sum(-1)
    return [
        (
            "swapped_gradient",
            "the error edges were built from the gradient at the token (embedding) nodes: error edges = grad at "
            "the token node · error; an error node's edge is (grad at the error · error).sum(-1), its own gradient",
            by_token,
        ),
        (
            "swapped_gradient",
            "the token edges were built from the gradient at the error nodes: token edges = grad at the error node · "
            "embedding; a token node's edge is (grad at the embeddings · embedding).sum(-1), its own gradient",
            by_error,
        ),
        (
            "swapped_gradients",
            "the token and error gradients are swapped (e.g. the grads of (values, error, embeds) unpacked in "
            "another order): each error edge is grad at the TOKEN node · error and each token edge grad at the "
            "ERROR node · embedding; unpack the gradients in the order of the inputs passed to autograd.grad",
            both,
        ),
    ]


# ------------------------------------------------------------------------------------------------ node_influence
def identity_terms(A: Tensor, weights: Tensor) -> list[tuple[str, str, Tensor]]:
    """The path series with the identity subtracted twice, written as a matrix of ones (`- 1` for `- I`: 1 taken
    from every entry), started at Â² (the direct edges left out), or with Â added again (the direct edges twice)."""
    eye = torch.eye(len(A), device=A.device, dtype=A.dtype)
    a = A.abs()
    a_hat = a / a.sum(-1, keepdim=True).clamp_min(1e-12)
    right = weights @ (torch.linalg.inv(eye - a_hat) - eye)
    return [
        (
            "identity_twice",
            "the identity is subtracted twice: (I - Â)⁻¹Â - I, or (I - Â)⁻¹ - 2I; the paths of length >= 1 are "
            "Â + Â² + … = (I - Â)⁻¹ - I = (I - Â)⁻¹Â: subtract I once (or use (I - Â)⁻¹Â as it is)",
            right - weights,
        ),
        (
            "identity_as_ones",
            "the identity was written as a plain 1: (I - Â)⁻¹ - 1 takes 1 from every entry of the matrix (so "
            "w @ … takes sum(w) from every node), where - I takes it from the diagonal only; subtract "
            "torch.eye(n): influence = w @ ((I - Â)⁻¹ - I)",
            right + weights - weights.sum(),
        ),
        (
            "series_from_second",
            "the series starts at Â² (the direct edges left out): (I - Â)⁻¹ - I = Â + Â² + … counts paths of every "
            "length from 1",
            right - weights @ a_hat,
        ),
        (
            "direct_twice",
            "the direct edges are counted twice: (I - Â)⁻¹ - I = Â + Â² + … already holds the paths of length 1, "
            "so adding Â (or starting a loop's total at Â before adding every power from Â) counts them again",
            right + weights @ a_hat,
        ),
        *influence_pairs(A, weights),
    ]


def influence_readings(impl: Callable, A: Tensor, weights: Tensor, out: Tensor, right: Tensor) -> None:
    """The signed-adjacency readings (hints.influence_signed), then: the output wrong only at the nodes that carry a
    logit weight, the identity's diagonal in w @ (… ± I): a term ± I added or subtracted."""
    hints.influence_signed(impl, A, weights, out, right)
    diff = (out.to(right) - right).abs() > 1e-4 * right.abs().max() + 1e-6
    on = weights != 0
    if diff.any() and bool((diff <= on).all()):
        shift = (out.to(right) - right)[on] / weights[on]
        same = int(on.sum()) >= 2 and bool(torch.allclose(shift, shift[0], rtol=1e-3, atol=1e-6))
        seen = f"the influence is wrong only at the {int(diff.sum())} nodes that carry a logit weight"
        if same:  # read back: out = w @ ((I - Â)⁻¹ - I + c·I) for the one c seen at every weighted node
            message = f"{seen} ({float(shift.mean()):+.3g} × the logit weights there), every other node is right"
            hint = (
                f"yours is w @ ((I - Â)⁻¹ - I) + ({float(shift.mean()):+.3g})·w: a term ± I (the identity) added "
                "or subtracted (the identity's diagonal adds w there: the series starts at I, or I is subtracted "
                "twice, e.g. (I - Â)⁻¹Â - I), or the logit weights added to the influence: "
                "influence = w @ ((I - Â)⁻¹ - I)"
            )
        else:
            message = f"{seen}, by a different multiple of the weight at each ({observed.where_wrong(out, right)})"
            hint = (
                "not a term c·I added or subtracted (that would shift every weighted node by the same multiple c of "
                "its weight); the nodes without a logit weight are right, so compare what yours does at the weighted "
                "nodes with influence = w @ ((I - Â)⁻¹ - I)"
            )
        fail(
            message,
            hint,
            code="identity_term",
        )
    damped_rows.rows_after_series(out, A, weights)
    readbacks.influence_readbacks(out, A, weights)


# ------------------------------------------------------------------------------------------------ quantile_examples
def _pick(flat: Tensor, k: int, n_bands: int, top: Tensor, out_of_band: float) -> list[Tensor]:
    groups = []
    for j in range(n_bands):
        lo, hi = top * (n_bands - j - 1) / n_bands, top * (n_bands - j) / n_bands
        in_band = (flat > lo) & (flat <= hi)
        n = min(k, int(in_band.sum()))
        score = torch.where(in_band, (flat - (lo + hi) / 2).abs(), torch.full_like(flat, out_of_band))
        chosen = score.topk(n, largest=False).indices
        groups.append(flat[chosen].sort(descending=True).values)
    return groups


def _out_of_band_wins(out: Any, acts: Tensor, k: int, n_bands: int) -> bool:
    """Each group holds min(k, in-band count) examples, every out-of-band value first (any of them: they tie at
    distance 0), topped up with in-band values only when the out-of-band ones run out; at least one out of band."""
    flat = acts.clone().double()
    flat[:, 0] = 0
    flat = flat.flatten()
    top, seen = flat.max(), False
    for j, group in enumerate(out):
        lo, hi = top * (n_bands - j - 1) / n_bands, top * (n_bands - j) / n_bands
        vals = torch.as_tensor(group[0]).detach().double().cpu().flatten()
        in_band = (flat > lo) & (flat <= hi)
        n = min(k, int(in_band.sum()))
        n_out = int((~in_band).sum())
        got_out = int(((vals <= lo) | (vals > hi)).sum())
        if len(vals) != n or got_out != min(n, n_out):
            return False
        seen = seen or got_out > 0
    return seen


def quantile_slips(out: Any, expected: list, acts: Tensor, k: int, n_bands: int, impl: Callable) -> None:
    """Out-of-band examples that win (distances masked with 0, not inf), position 0 zeroed in one sequence only or the
    first sequence zeroed instead; then probes.quantile_probed."""
    readbacks.quantile_readbacks(out, acts, k, n_bands)
    try:
        wins = _out_of_band_wins(out, acts.cpu(), k, n_bands)
    except (TypeError, IndexError, RuntimeError, AttributeError):
        wins = False
    if wins:
        band_masks.out_of_band_cause(impl, acts.device)
    slips = {
        "position 0 excluded only in the first sequence: exclude position 0 of every sequence (flat[0] = 0 on the "
        "flattened activations is sequence 0's position 0 alone; use acts[:, 0] = 0 before flattening)": True,
        "the first sequence was zeroed instead of position 0 of every sequence: acts[:, 0] = 0, not acts[0] = 0": False,
    }
    for hint, flat_first in slips.items():
        flat = acts.clone().double().cpu()
        flat = flat.flatten() if flat_first else flat
        flat[0] = 0
        flat = flat.flatten()
        groups = [(g,) for g in _pick(flat, k, n_bands, flat.max(), float("inf"))]
        if known.same_values(out, groups) and not known.same_values(out, expected):
            fail("the groups' values are those of bands with position 0 left in for some sequences", hint, "bos_some")
    terms.bos_positions(out, expected, acts, k, n_bands, known.quantile_variant, known.same_groups)
    probes.quantile_probed(out, expected, acts, k, n_bands)
