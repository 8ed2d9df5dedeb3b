"""Proofs for the part 6b checkers from the fresh15 held-out trial, unnamed cases (the others are in
test_part6b_circuits_checkers.py and ..._heldout*_checkers.py)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import solutions.part6b_circuits as R
import tests.part6b_circuits as checks
from tests.proving import assert_fails


def test_transcoder_forward_identity_skip_fresh15():
    def transcoder_forward(tc, x):
        pre = x @ tc.W_enc + tc.b_enc
        acts = pre * (pre > tc.threshold)
        out = acts @ tc.W_dec + tc.b_dec
        return acts, out + (x if tc.W_skip is not None else 0)

    err = assert_fails(checks.test_transcoder_forward, transcoder_forward, "identity_skip")
    assert "x itself is added" in err.hint


def _losses(swapped: bool, in_place: bool):
    def replacement_losses(model, tc, tokens):
        seen = {}

        def read(act, hook):
            seen["x"] = act

        def write(act, hook):
            if in_place:
                act[:] = tc(seen["x"])
                return None
            return tc(seen.get("x", act))

        L = lambda hooks: model.run_with_hooks(tokens, return_type="loss", fwd_hooks=hooks).item()
        names = (tc.hook_name_out, tc.hook_name) if swapped else (tc.hook_name, tc.hook_name_out)
        rep = L([(names[0], read), (names[1], write)])
        clean, zero = L([]), L([(tc.hook_name_out, lambda act, hook: torch.zeros_like(act))])
        return {"clean": clean, "replaced": rep, "zero_ablated": zero, "recovered": (zero - rep) / (zero - clean)}

    return replacement_losses


def test_replacement_losses_names_swapped_raises_fresh15():
    err = assert_fails(checks.test_replacement_losses, _losses(swapped=True, in_place=True), "hook_names_swapped")
    assert "KeyError" in err.message


def test_replacement_losses_names_swapped_value_fresh15():
    # no error (the write hook falls back on its own input): the replaced loss is wrong, and the swap is named
    assert_fails(checks.test_replacement_losses, _losses(swapped=True, in_place=False), "hook_names_swapped")


def test_token_views_cosine_fresh15():
    de = lambda model, tc, latent: F.cosine_similarity(model.W_E, tc.W_enc[:, latent][None], dim=-1)
    assert_fails(checks.test_latent_de_embedding, de, "cosine")
    logit = lambda model, tc, latent: F.cosine_similarity(tc.W_dec[latent][:, None], model.W_U, dim=0)
    assert_fails(checks.test_latent_logit_effect, logit, "cosine")


def test_attribution_edges_error_summed_over_positions_fresh15():
    def attribution_edges(model, tc, frozen, graph):
        A = torch.zeros(graph.n_nodes, graph.n_nodes)
        pos, idx = graph.latent_pos, graph.latent_idx
        with torch.enable_grad():
            emb = frozen.embeds.detach().clone().requires_grad_()
            err = frozen.error.detach().clone().requires_grad_()
            vals = frozen.acts[pos, idx].detach().clone().requires_grad_()
            lat = torch.zeros_like(frozen.acts).index_put((pos, idx), vals)
            pre, logits = R.linearised_forward(model, tc, frozen, emb, lat, err)
            rows = list(range(graph.n_latents)) + list(range(graph.nodes("logit").start, graph.n_nodes))
            targets = list(pre[pos, idx]) + list(logits[-1, graph.logit_ids])
            for row, t in zip(rows, targets, strict=True):
                gv, ge, gm = torch.autograd.grad(t, (vals, err, emb), retain_graph=True, materialize_grads=True)
                A[row, graph.nodes("latent")] = (gv * vals).detach()
                A[row, graph.nodes("error")] = (ge * err).sum(0).detach()
                A[row, graph.nodes("token")] = (gm * emb).sum(-1).detach()
        return A

    err = assert_fails(checks.test_attribution_edges, attribution_edges, "edge_size")
    assert "d_model" in err.hint and "sum(-1)" in err.hint
