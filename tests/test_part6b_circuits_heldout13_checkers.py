"""Proofs for part 6b's diagnoses added after the fresh25 held-out measurement: error edges that are one total
(summed over the positions and d_model) copied into every error node, and a band holding fewer than k entries
filled up by topk(k) with masked (-inf) entries, named before the non-finite values are reported; after fresh27:
losses returned as 0-d tensors, bands from the minimum (shown by negative activations), error edges as
sum |grad ⊙ error|."""

from __future__ import annotations

import torch

import solutions.part6b_circuits as R
import tests.part6b_circuits as checks
from tests.proving import assert_fails


def _edges_error_total(model, tc, frozen, graph):
    A = R.attribution_edges(model, tc, frozen, graph).clone()
    err = graph.nodes("error")
    A[:, err] = A[:, err].sum(-1, keepdim=True)  # one total per row, copied into every error node
    A[graph.nodes("token")] = 0
    A[graph.nodes("error")] = 0
    return A


def test_error_edges_total_copied_into_every_error_node():
    try:
        failure = assert_fails(checks.test_attribution_edges, _edges_error_total, "error_edges_equal")
    finally:
        checks._setup("cpu")[0].reset_hooks(including_permanent=True)
    assert "equal across the" in failure.message and "row's total" in failure.message
    assert ".sum(-1)" in failure.hint and "one edge per position" in failure.hint


def _quantile_always_k(acts, k, n_bands=4):
    a = acts.clone()
    a[:, 0] = float("-inf")
    a = a.flatten()
    m = a.max()
    groups = []
    for j in range(n_bands):
        lo, hi = m * (n_bands - j - 1) / n_bands, m * (n_bands - j) / n_bands
        inb = (a > lo) & (a <= hi)
        dist = torch.where(inb, (a - (lo + hi) / 2).abs(), torch.tensor(float("inf")))
        ch = dist.topk(k, largest=False).indices  # k even where the band holds fewer
        ch = ch[a[ch].sort(descending=True).indices]
        groups.append((a[ch], ch // acts.shape[1], ch % acts.shape[1]))
    return groups


def test_quantile_short_band_filled_with_minus_inf_is_named():
    failure = assert_fails(checks.test_quantile_examples, _quantile_always_k, "short_band")
    assert "band 1" in failure.message and "fewer than k = 3" in failure.message
    assert "topk(k) pulled in entries outside the band" in failure.hint and "-inf" in failure.hint


# Round AB (fresh27): 0-d tensor losses, bands from the minimum, error edges as sum |grad ⊙ error|.
def _losses_as_tensors(model, tc, tokens):
    out = R.replacement_losses(model, tc, tokens)
    return {key: torch.tensor(value) for key, value in out.items()}


def test_replacement_losses_as_tensors_is_named():
    try:
        failure = assert_fails(checks.test_replacement_losses, _losses_as_tensors, "not_float")
    finally:
        checks._setup("cpu")[0].reset_hooks(including_permanent=True)
    assert "0-d tensor" in failure.message and "Python floats" in failure.hint


def _quantile_from_min(acts, k, n_bands=4):
    flat = acts.clone()
    flat[:, 0] = 0
    flat = flat.flatten()
    top, bottom = flat.max(), flat.min()  # the minimum, 0 on activations >= 0
    width = (top - bottom) / n_bands
    groups = []
    for j in range(n_bands):
        hi = top - j * width
        lo = hi - width
        idx = torch.nonzero((flat > lo) & (flat <= hi)).flatten()
        chosen = idx[(flat[idx] - (lo + hi) / 2).abs().argsort()[:k]]
        chosen = chosen[flat[chosen].argsort(descending=True)]
        groups.append((flat[chosen], chosen // acts.shape[1], chosen % acts.shape[1]))
    return groups


def test_quantile_bands_from_the_minimum_are_named():
    failure = assert_fails(checks.test_quantile_examples, _quantile_from_min, "band_range")
    assert "negative entries" in failure.message and "from the minimum" in failure.message
    assert "(0, max]" in failure.hint


def test_quantile_correct_answer_passes_on_negative_activations():
    acts = checks._quantile_inputs(torch.device("cpu"))
    acts[acts == 0] = -1.5
    want = R.quantile_examples(acts, 3, 4)
    flat = acts.clone()
    flat[:, 0] = 0
    assert all((g[0] > 0).all() for g in want) and float(flat.min()) < 0


def _edges_abs_error(model, tc, frozen, graph):
    A = R.attribution_edges(model, tc, frozen, graph).clone()
    err = graph.nodes("error")
    with torch.enable_grad():
        error = frozen.error.detach().clone().requires_grad_(True)
        pos, idx = graph.latent_pos, graph.latent_idx
        latents = torch.zeros_like(frozen.acts)
        latents[pos, idx] = frozen.acts[pos, idx]
        pre, logits = R.linearised_forward(model, tc, frozen, frozen.embeds, latents, error)
        targets = torch.cat([pre[pos, idx], logits[-1, graph.logit_ids]])
        rows = list(range(graph.n_latents)) + list(range(graph.nodes("logit").start, graph.n_nodes))
        for row, t in zip(rows, targets, strict=True):
            (g,) = torch.autograd.grad(t, (error,), retain_graph=True)
            A[row, err] = (g * error.detach()).abs().sum(-1)  # magnitudes summed, not the signed dot product
    return A


def test_error_edges_in_absolute_value_are_named():
    try:
        failure = assert_fails(checks.test_attribution_edges, _edges_abs_error, "abs_dot")
    finally:
        checks._setup("cpu")[0].reset_hooks(including_permanent=True)
    assert "error edges are sum |grad ⊙ error|" in failure.hint
