"""Proofs for part 6b's diagnoses added after the fresh25 held-out measurement: error edges that are one total
(summed over the positions and d_model) copied into every error node, and a band holding fewer than k entries
filled up by topk(k) with masked (-inf) entries, named before the non-finite values are reported."""

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
