"""Proofs for the part 6b checkers from the fresh16 held-out trial (the others are in
test_part6b_circuits_checkers.py and ..._heldout*_checkers.py)."""

from __future__ import annotations

import pytest
import torch

import tests.part6b_circuits as checks
from solutions import part6b_circuits as ref
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


def _linearised(bug):
    def linearised_forward(model, tc, frozen, embeds, latents=None, error=None):
        def ln(v, s):
            return (v - v.mean(-1, keepdim=True)) / s

        x1 = ln(embeds, frozen.ln1_scale)
        v = torch.einsum("kd,hde->hke", x1, model.W_V[0]) + model.b_V[0][:, None]
        if bug == "pattern_summed_q":  # 'h q k, h k e -> h k e'
            z = torch.einsum("hqk,hke->hke", frozen.pattern, v)
        elif bug == "pattern_summed_k":  # 'h q k, h q e -> h q e'
            z = torch.einsum("hqk,hqe->hqe", frozen.pattern, v)
        else:
            z = torch.einsum("hqk,hke->hqe", frozen.pattern, v)
        resid = x1 if bug == "resid_x1" else embeds
        resid_mid = resid + torch.einsum("hqe,hed->qd", z, model.W_O[0]) + model.b_O[0]
        x = ln(resid_mid, frozen.ln2_scale)
        pre = x @ tc.W_enc + tc.b_enc
        f = pre * frozen.active if latents is None else latents
        e = frozen.error if error is None else error
        mlp_out = f @ tc.W_dec + tc.b_dec + tc.skip(x) + e
        return pre, ln(resid_mid + mlp_out, frozen.final_scale) @ model.W_U + model.b_U

    return linearised_forward


@pytest.mark.parametrize("bug", ["resid_x1", "pattern_summed_q", "pattern_summed_k"])
def test_linearised_forward_fresh16(bug):
    assert_fails(checks.test_linearised_forward, _linearised(bug), bug)


def test_attribution_edges_latent_id_as_node_fresh16():
    def attribution_edges(model, tc, frozen, graph):
        pos, idx = graph.latent_pos, graph.latent_idx
        A = torch.zeros(graph.n_nodes, graph.n_nodes, device=frozen.embeds.device)
        T = graph.nodes("token")
        with torch.enable_grad():
            emb = frozen.embeds.detach().clone().requires_grad_(True)
            pre, _ = ref.linearised_forward(model, tc, frozen, emb, None, frozen.error)
            for row, y in zip(idx.tolist(), pre[pos, idx], strict=True):  # a latent's id as its row
                (g,) = torch.autograd.grad(y, (emb,), retain_graph=True)
                A[row, T] = (g * emb.detach()).sum(-1)
        return A

    err = assert_fails(checks.test_attribution_edges, attribution_edges, "latent_id_as_node")
    assert "graph.latent_idx[" in err.message


def _spliced_losses(read_kind):
    def replacement_losses(model, tc, tokens):
        x = None
        seen = {}

        def read_local(act, hook):
            x = act  # noqa: F841  (a new local: the outer x stays None)

        def read_other_key(act, hook):
            seen["act"] = act

        read = read_local if read_kind == "local" else read_other_key
        write = (lambda act, hook: tc(x)) if read_kind == "local" else (lambda act, hook: tc(seen.get("x")))
        L = lambda hooks: model.run_with_hooks(tokens, return_type="loss", fwd_hooks=hooks).item()
        clean = L([])
        rep = L([(tc.hook_name, read), (tc.hook_name_out, write)])
        zero = L([(tc.hook_name_out, lambda act, hook: act * 0)])
        return {"clean": clean, "replaced": rep, "zero_ablated": zero, "recovered": (zero - rep) / (zero - clean)}

    return replacement_losses


def test_replacement_losses_hook_local_fresh16():
    err = assert_fails(checks.test_replacement_losses, _spliced_losses("local"), "hook_local")
    assert "assigns `x`" in err.message and "nonlocal x" in err.hint


def test_replacement_losses_hook_input_lost_fresh16():
    # the write hook reads a dict the read hook never fills: nothing names one local, so the causes are listed
    err = assert_fails(checks.test_replacement_losses, _spliced_losses("dict"), "hook_input_lost")
    assert "possible causes" in err.hint
