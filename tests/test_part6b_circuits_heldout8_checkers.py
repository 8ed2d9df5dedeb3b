"""Proofs for the part 6b checkers from the fresh16 held-out trial (the others are in
test_part6b_circuits_checkers.py and ..._heldout*_checkers.py)."""

from __future__ import annotations

import torch

import tests.part6b_circuits as checks
from tests.proving import assert_fails


def _losses(bug=None):
    def replacement_losses(model, tc, tokens):
        seen = {}

        def read(act, hook):
            seen["x"] = act

        L = lambda hooks: model.run_with_hooks(tokens, return_type="loss", fwd_hooks=hooks).item()
        clean = L([])
        rep = L([(tc.hook_name, read), (tc.hook_name_out, lambda act, hook: tc(seen["x"]))])
        zero = L([(tc.hook_name_out, lambda act, hook: act * 0)])
        if bug == "rounded":
            clean, rep, zero = round(clean, 3), round(rep, 3), round(zero, 3)
        return {"clean": clean, "replaced": rep, "zero_ablated": zero, "recovered": (zero - rep) / (zero - clean)}

    return replacement_losses


def test_replacement_losses_rounded_fresh16():
    err = assert_fails(checks.test_replacement_losses, _losses("rounded"), "rounded")
    assert "rounded to 3 decimals" in err.message


def _quantile(bug=None):
    def quantile_examples(acts, k, n_bands=4):
        a2 = acts.clone()
        a2[:, 0] = 0
        seq = a2.shape[1]
        a = a2.flatten()
        m = a.max()
        groups = []
        for j in range(n_bands):
            lo, hi = m * (n_bands - j - 1) / n_bands, m * (n_bands - j) / n_bands
            cand = ((a > lo) & (a <= hi)).nonzero().flatten()
            pick = cand[(a[cand] - (lo + hi) / 2).abs().argsort(stable=True)[:k]]
            if bug == "values_only_sorted":
                groups.append((a[pick].sort(descending=True).values, pick // seq, pick % seq))
                continue
            pick = pick[a[pick].argsort(descending=True, stable=True)]
            groups.append((a[pick], pick // seq, pick % seq))
        return groups

    return quantile_examples


def test_quantile_examples_indices_not_reordered_fresh16():
    err = assert_fails(checks.test_quantile_examples, _quantile("values_only_sorted"), "indices_order")
    assert "weren't reordered" in err.hint


def _influence(bug):
    def node_influence(adjacency, logit_weights):
        if bug == "clamped_entries":
            a = adjacency.abs().clamp_min(1e-12)
            a = a / a.sum(-1, keepdim=True)
        else:
            a = (adjacency / adjacency.abs().sum(-1, keepdim=True).clamp_min(1e-12)).abs()
        eye = torch.eye(len(a), dtype=a.dtype, device=a.device)
        B = torch.linalg.solve(eye - a, a)
        return (logit_weights[:, None] * B).max(0).values if bug == "max_over_logits" else logit_weights @ B

    return node_influence


def test_node_influence_clamped_entries_fresh16():
    assert_fails(checks.test_node_influence, _influence("clamped_entries"), "clamped_entries")


def test_node_influence_max_over_logits_fresh16():
    assert_fails(checks.test_node_influence, _influence("max_over_logits"), "max_over_logits")


def test_quantile_examples_bands_one_step_high_fresh16():
    def quantile_examples(acts, k, n_bands=4):
        a2 = acts.clone()
        a2[:, 0] = 0
        seq, a = a2.shape[1], a2.flatten()
        m, groups = a.max(), []
        for j in range(n_bands):
            lo, hi = m * (n_bands - j) / n_bands, m * (n_bands - j + 1) / n_bands
            cand = torch.nonzero((a > lo) & (a <= hi)).flatten()
            pick = cand[(a[cand] - (lo + hi) / 2).abs().argsort(stable=True)[:k]]
            pick = pick[a[pick].argsort(descending=True, stable=True)]
            groups.append((a[pick], pick // seq, pick % seq))
        return groups

    err = assert_fails(checks.test_quantile_examples, quantile_examples, "band_shift")
    assert "one step higher" in err.message
