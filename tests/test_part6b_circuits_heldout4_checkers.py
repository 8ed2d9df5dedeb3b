"""Proofs for the part 6b checkers from the fresh13 held-out trial (the others are in test_part6b_circuits_checkers.py
and ..._heldout*_checkers.py)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import tests.part6b_circuits as checks
from solutions import part6b_circuits as ref
from tests.proving import assert_fails


def test_transcoder_clamp_at_threshold_fresh13():
    def transcoder_forward(tc, x):
        acts = (x @ tc.W_enc + tc.b_enc).clamp(min=tc.threshold)
        out = acts @ tc.W_dec + tc.b_dec
        return acts, out + (x @ tc.W_skip.T if tc.W_skip is not None else 0)

    assert_fails(checks.test_transcoder_forward, transcoder_forward, "clamp_at_threshold")


def _losses(bug):
    def replacement_losses(model, tc, tokens):
        seen = {}
        read = (tc.hook_name, lambda act, hook: seen.__setitem__("x", act))
        where = "blocks.0.hook_resid_post" if bug == "resid_post" else tc.hook_name_out
        loss = lambda hooks: model.run_with_hooks(tokens, return_type="loss", fwd_hooks=hooks).item()
        clean = loss([])
        replaced = loss([read, (where, lambda act, hook: tc(seen["x"]))])
        zero = loss([(tc.hook_name_out, lambda act, hook: torch.zeros_like(act))])
        rec = (zero - replaced) / (zero - clean)
        if bug == "swap":
            replaced, zero = zero, replaced
        return {"clean": clean, "replaced": replaced, "zero_ablated": zero, "recovered": rec}

    return replacement_losses


@pytest.mark.parametrize("bug, code", [("swap", "keys_swapped"), ("resid_post", "residual_replaced")])
def test_replacement_losses_fresh13(bug, code):
    assert_fails(checks.test_replacement_losses, _losses(bug), code)


def _linearised(bug):
    def linearised_forward(model, tc, frozen, embeds, latents=None, error=None):
        def ln(v, s):
            return (v - v.mean(-1, keepdim=True)) / (s.mean() if bug == "scale_mean" else s)

        x1 = embeds if bug == "no_ln1" else ln(embeds, frozen.ln1_scale)
        v = torch.einsum("kd,hde->hke", x1, model.W_V[0]) + model.b_V[0][:, None]
        z = torch.einsum("hqk,hke->hqe", frozen.pattern, v)
        resid_mid = embeds + torch.einsum("hqe,hed->qd", z, model.W_O[0]) + model.b_O[0]
        x = ln(resid_mid, frozen.ln2_scale)
        pre = x @ tc.W_enc + tc.b_enc
        gated = (F.relu(pre) if bug == "relu_active" else pre) * frozen.active
        f = latents if latents is not None else gated
        e = frozen.error if error is None else error
        mlp_out = f @ tc.W_dec + tc.b_dec + tc.skip(x) + e
        return pre, ln(resid_mid + mlp_out, frozen.final_scale) @ model.W_U + model.b_U

    return linearised_forward


@pytest.mark.parametrize("bug", ["relu_active", "scale_mean", "no_ln1"])
def test_linearised_forward_fresh13(bug):
    assert_fails(checks.test_linearised_forward, _linearised(bug), bug)


def _edges(bug):
    def attribution_edges(model, tc, frozen, graph):
        pos, idx = graph.latent_pos, graph.latent_idx
        A = torch.zeros(graph.n_nodes, graph.n_nodes)
        L, E, T = graph.nodes("latent"), graph.nodes("error"), graph.nodes("token")
        rows = list(range(graph.n_latents)) + list(range(graph.nodes("logit").start, graph.n_nodes))
        ctx = torch.no_grad() if bug == "no_enable_grad" else torch.enable_grad()
        with ctx:
            emb = frozen.embeds.detach().clone().requires_grad_(True)
            err = frozen.error.detach().clone().requires_grad_(True)
            val = frozen.acts[pos, idx].detach().clone().requires_grad_(True)
            lat = torch.zeros_like(frozen.acts).index_put((pos, idx), val)
            pre, logits = ref.linearised_forward(model, tc, frozen, emb, lat, err)
            targets = torch.cat([pre[pos, idx], logits[-1, graph.logit_ids]])
            for row, y in zip(rows, targets, strict=True):
                gv, ge, gt = torch.autograd.grad(y, (val, err, emb), retain_graph=True, allow_unused=True)
                gv = torch.zeros_like(val) if gv is None else gv
                ge = torch.zeros_like(err) if ge is None else ge
                A[row, L] = gv * val.detach()
                A[row, E] = (ge * err.detach()).sum(-1)
                A[row, T] = (gt * emb.detach()).abs().sum(-1)
        return A.to(frozen.embeds.device)

    return attribution_edges


@pytest.mark.parametrize("bug, code", [("no_enable_grad", "grad_disabled"), ("abs_dot", "abs_dot")])
def test_attribution_edges_fresh13(bug, code):
    assert_fails(checks.test_attribution_edges, _edges(bug), code)


def test_node_influence_weights_ignored_fresh13():
    def node_influence(adjacency, logit_weights):
        eye = torch.eye(len(adjacency), dtype=torch.float64, device=adjacency.device)
        a = adjacency.abs().double()
        a = a / a.sum(-1, keepdim=True).clamp_min(1e-12)
        return (torch.linalg.inv(eye - a) @ a).sum(0).to(adjacency.dtype)

    assert_fails(checks.test_node_influence, node_influence, "weights_ignored")


def _quantiles(bug):
    def quantile_examples(acts, k, n_bands=4):
        seq = acts.shape[1]
        a = acts.clone()
        a[:, 0] = 0
        a = a.flatten()
        m = a.max()
        groups = []
        for j in range(n_bands):
            lo, hi = m * (n_bands - j - 1) / n_bands, m * (n_bands - j) / n_bands
            cand = ((a > lo) & (a <= hi)).nonzero().flatten()
            if bug == "skip_empty" and len(cand) == 0:
                continue
            chosen = cand[(a[cand] - (lo + hi) / 2).abs().argsort(stable=True)[:k]]
            chosen = chosen[a[chosen].argsort(descending=True, stable=True)]
            first, second = (chosen % seq, chosen // seq) if bug == "swap_idx" else (chosen // seq, chosen % seq)
            groups.append((a[chosen], first, second))
        return groups

    return quantile_examples


@pytest.mark.parametrize("bug, code", [("skip_empty", "empty_band"), ("swap_idx", "indices_swapped")])
def test_quantile_examples_fresh13(bug, code):
    assert_fails(checks.test_quantile_examples, _quantiles(bug), code)
