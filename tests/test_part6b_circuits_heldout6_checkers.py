"""Proofs for the part 6b checkers from the fresh14 held-out trial, unnamed cases (the others are in
test_part6b_circuits_checkers.py and ..._heldout*_checkers.py)."""

from __future__ import annotations

import torch

import solutions.part6b_circuits as R
import tests.part6b_circuits as checks
from tests import part6b_circuits_mistakes as known
from tests.proving import assert_fails


def test_transcoder_forward_bool_index_fresh14():
    def transcoder_forward(tc, x):
        pre = x @ tc.W_enc + tc.b_enc
        mask = pre > tc.threshold
        acts = pre[mask]
        out = torch.einsum("...s,so->...o", acts, tc.W_dec) + tc.b_dec
        return acts, out + (0 if tc.W_skip is None else x @ tc.W_skip.T)

    err = assert_fails(checks.test_transcoder_forward, transcoder_forward, "bool_index")
    assert "torch.where(mask" in err.hint


def test_replacement_losses_latents_returned_fresh14():
    def replacement_losses(model, tc, tokens):
        _, cache = model.run_with_cache(tokens, names_filter=tc.hook_name)
        x = cache[tc.hook_name]
        loss = lambda hooks: float(model.run_with_hooks(tokens, return_type="loss", fwd_hooks=hooks))
        clean = loss([])
        replaced = loss([(tc.hook_name_out, lambda act, hook: R.transcoder_forward(tc, x)[0])])
        zero = loss([(tc.hook_name_out, lambda act, hook: torch.zeros_like(act))])
        return {"clean": clean, "replaced": replaced, "zero_ablated": zero, "recovered": 0.0}

    assert_fails(checks.test_replacement_losses, replacement_losses, "hook_width")


def test_latent_de_embedding_fresh14():
    pos_mean = lambda model, tc, latent: (model.W_E + model.W_pos.mean(0)) @ tc.W_enc[:, latent]
    assert_fails(checks.test_latent_de_embedding, pos_mean, "positional")
    over = lambda model, tc, latent: model.W_E @ tc.W_enc[:, latent] / tc.threshold[latent]
    assert_fails(checks.test_latent_de_embedding, over, "threshold_scale")


def test_linearised_forward_fresh14():
    for code in ("global_mean", "skip_untransposed"):
        forward = lambda model, tc, frozen, embeds, latents=None, error=None, code=code: known.variant_forward(
            model, tc, frozen, embeds, latents, error, **{code: True}
        )
        assert_fails(checks.test_linearised_forward, forward, code)


def _edges(token_edge):
    def attribution_edges(model, tc, frozen, graph):
        pos, idx = graph.latent_pos, graph.latent_idx
        A = torch.zeros(graph.n_nodes, graph.n_nodes, device=frozen.embeds.device)
        L, E, T = graph.nodes("latent"), graph.nodes("error"), graph.nodes("token")
        with torch.enable_grad():
            emb = frozen.embeds.detach().clone().requires_grad_(True)
            err = frozen.error.detach().clone().requires_grad_(True)
            lat = torch.zeros_like(frozen.acts)
            lat[pos, idx] = frozen.acts[pos, idx]
            lat = lat.detach().requires_grad_(True)
            pre, logits = R.linearised_forward(model, tc, frozen, emb, lat, err)
            targets = list(pre[pos, idx]) + list(logits[-1, graph.logit_ids])
            rows = list(range(L.start, L.stop)) + list(range(graph.nodes("logit").start, graph.nodes("logit").stop))
            for row, y in zip(rows, targets, strict=True):
                kw = dict(retain_graph=True, allow_unused=True, materialize_grads=True)
                gl, ge, gt = torch.autograd.grad(y, (lat, err, emb), **kw)
                A[row, L] = gl[pos, idx] * lat.detach()[pos, idx]
                A[row, E] = (ge * err.detach()).sum(-1)
                A[row, T] = token_edge(gt * emb.detach())
        return A

    return attribution_edges


def test_attribution_edges_token_total_fresh14():
    assert_fails(checks.test_attribution_edges, _edges(lambda prod: prod.sum()), "token_total")


def test_attribution_edges_no_sum_fresh14():
    err = assert_fails(checks.test_attribution_edges, _edges(lambda prod: prod), "exception")
    assert ".sum(-1)" in err.hint


def test_node_influence_matrix_exp_fresh14():
    def node_influence(adjacency, logit_weights):
        a = adjacency.abs()
        s = a.sum(-1, keepdim=True)
        a = torch.where(s > 0, a / s.clamp_min(1e-30), torch.zeros_like(a))
        return logit_weights @ (torch.linalg.matrix_exp(a) - torch.eye(len(a)))

    assert_fails(checks.test_node_influence, node_influence, "matrix_exp")


def _quantiles(distances=False, split=False):
    def quantile_examples(acts, k, n_bands=4):
        seq = acts.shape[1]
        a = acts.clone()
        a[:, 0] = 0
        flat = a.flatten()
        m = flat.max()
        kk = k // n_bands if split else k
        groups = []
        for j in range(n_bands):
            hi, lo = m * (n_bands - j) / n_bands, m * (n_bands - j - 1) / n_bands
            members = ((flat > lo) & (flat <= hi)).nonzero().flatten()
            d = (flat[members] - (lo + hi) / 2).abs()
            ch = members[d.argsort(stable=True)[:kk]]
            ch = ch[flat[ch].argsort(descending=True, stable=True)]
            vals = (flat[ch] - (lo + hi) / 2).abs() if distances else flat[ch]
            groups.append((vals, ch // seq, ch % seq))
        return groups

    return quantile_examples


def test_quantile_examples_distances_fresh14():
    assert_fails(checks.test_quantile_examples, _quantiles(distances=True), "distances")


def test_quantile_examples_k_split_fresh14():
    err = assert_fails(checks.test_quantile_examples, _quantiles(split=True), "k_per_band")
    assert "EACH band" in err.hint
