"""Proofs for part 6b's sign and band readings: Â built from the excitatory edges only (relu(A)) is named; a band
test missing its upper edge is named (not the k cap); every band ranked from m/2 lists both causes that rank alike."""

from __future__ import annotations

import torch

import tests.part6b_circuits as checks
from tests.proving import assert_fails


def _influence(sign):
    def impl(adjacency, w):
        a = (sign * adjacency).clamp_min(0)
        a = a / a.sum(-1, keepdim=True).clamp_min(1e-12)
        eye = torch.eye(len(a), dtype=a.dtype, device=a.device)
        return w @ (torch.linalg.inv(eye - a) - eye)

    return impl


def test_excitatory_edges_only_is_named():
    failure = assert_fails(checks.test_node_influence, _influence(1), "signed_normaliser")
    assert "only the positive (excitatory) edges kept: use |A|" in failure.message


def _quantile(mode):
    def impl(acts, k, n_bands=4):
        a = acts.clone()
        a[:, 0] = 0
        flat, m, seq = a.flatten(), a.max(), acts.shape[1]
        groups = []
        for j in range(n_bands):
            lo, hi = m * (n_bands - j - 1) / n_bands, m * (n_bands - j) / n_bands
            in_band = (flat > lo) if mode == "no_upper" else (flat > lo) & (flat <= hi)
            mid = m / 2 if mode == "global_mid" else (lo + hi) / 2
            n = min(k, int(in_band.sum()))
            d = torch.where(in_band, (flat - mid).abs(), torch.full_like(flat, float("inf")))
            ch = d.topk(n, largest=False).indices
            ch = ch[flat[ch].argsort(descending=True)]
            groups.append((flat[ch], ch // seq, ch % seq))
        return groups

    return impl


def test_band_open_above_is_named_not_the_k_cap():
    failure = assert_fails(checks.test_quantile_examples, _quantile("no_upper"), "band_edge_missing")
    assert "a > lo only" in failure.message and "a band test missing one of its edges" in failure.hint


def test_every_band_from_the_whole_range_middle_lists_both_causes():
    failure = assert_fails(checks.test_quantile_examples, _quantile("global_mid"), "whole_range_middle")
    assert "middle of the whole range, m/2" in failure.hint and "counted from the bottom" in failure.hint
