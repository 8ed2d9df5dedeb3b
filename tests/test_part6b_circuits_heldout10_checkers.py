"""Proofs for the part 6b checkers: a soft gate in the transcoder, losses reported as a relation or scaled by a
count, b_dec added twice in the splice, a column of W_E as the de-embedding, the embeddings added twice to the final
residual, token edges scaled or kept only at the target's position, and a band's ranking by a wrong middle named
without claiming the largest (the others are in test_part6b_circuits_checkers.py and ..._heldout*_checkers.py)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import tests.part6b_circuits as checks
from solutions import part6b_circuits as ref
from tests.proving import assert_fails


def _forward_gate(gate):
    def impl(tc, x):
        pre = x @ tc.W_enc + tc.b_enc
        acts = pre * gate(pre - tc.threshold)
        out = acts @ tc.W_dec + tc.b_dec + (x @ tc.W_skip.T if tc.W_skip is not None else 0)
        return acts, out

    return impl


@pytest.mark.parametrize(
    ("gate", "words"),
    [(torch.sigmoid, "pre · sigmoid(pre - threshold)"), (lambda z: torch.sigmoid(3 * z), "rising smoothly")],
)
def test_transcoder_soft_gate(gate, words):
    err = assert_fails(checks.test_transcoder_forward, _forward_gate(gate), "soft_gate")
    assert words in err.hint and "hard step" in err.hint


def _losses(bug):
    def impl(model, tc, tokens):
        def loss(hooks):
            if bug == "sum_batch":
                logits = model.run_with_hooks(tokens, fwd_hooks=hooks)
                per = F.cross_entropy(logits[:, :-1].transpose(1, 2), tokens[:, 1:], reduction="none").mean(1)
                return per.sum().item()
            return model.run_with_hooks(tokens, return_type="loss", fwd_hooks=hooks).item()

        seen = {}

        def write(a, hook):
            return tc(seen["x"]) + (tc.b_dec if bug == "b_dec_twice" else 0)

        clean = loss([])
        replaced = loss([(tc.hook_name, lambda a, hook: seen.__setitem__("x", a)), (tc.hook_name_out, write)])
        zero = loss([(tc.hook_name_out, lambda a, hook: torch.zeros_like(a))])
        rec = (zero - replaced) / (zero - clean)
        rep = replaced - clean if bug == "delta" else replaced
        return {"clean": clean, "replaced": rep, "zero_ablated": zero, "recovered": rec}

    return impl


@pytest.mark.parametrize(
    ("bug", "code", "words"),
    [
        ("delta", "replaced_relative", "replaced - clean"),
        ("sum_batch", "loss_scale", "4 is the batch size"),
        ("b_dec_twice", "b_dec_twice", "b_dec is counted twice"),
    ],
)
def test_replacement_losses_relations(bug, code, words):
    err = assert_fails(checks.test_replacement_losses, _losses(bug), code)
    assert words in err.message + err.hint


def test_de_embedding_column_of_W_E():
    err = assert_fails(checks.test_latent_de_embedding, lambda model, tc, latent: model.W_E[:, latent], "matrix_slice")
    assert "model.W_E[:, 0]" in err.hint and "W_enc[:, latent] is missing" in err.hint


def test_logit_effect_row_of_W_U():
    err = assert_fails(checks.test_latent_logit_effect, lambda model, tc, latent: model.W_U[latent], "matrix_slice")
    assert "model.W_U[0]" in err.hint


def test_linearised_embeds_twice():
    def impl(model, tc, frozen, embeds, latents=None, error=None):
        pre, logits = ref.linearised_forward(model, tc, frozen, embeds, latents, error)
        centred = embeds - embeds.mean(-1, keepdim=True)
        return pre, logits + (centred / frozen.final_scale) @ model.W_U

    err = assert_fails(checks.test_linearised_forward, impl, "embeds_twice")
    assert "no second embeds" in err.hint


def _edges(bug):
    def impl(model, tc, frozen, graph):
        n = graph.n_nodes
        A = torch.zeros(n, n)
        pos, idx = graph.latent_pos, graph.latent_idx
        rows = list(range(graph.n_latents)) + list(range(graph.nodes("logit").start, n))
        with torch.enable_grad():
            emb = frozen.embeds.detach().clone().requires_grad_(True)
            err = frozen.error.detach().clone().requires_grad_(True)
            full = frozen.acts.detach().clone().requires_grad_(True)
            pre, logits = ref.linearised_forward(model, tc, frozen, emb, full, err)
            targets = list(pre[pos, idx]) + list(logits[-1, graph.logit_ids])
            tpos = pos.tolist() + [graph.n_pos - 1] * len(graph.logit_ids)
            for r, t, tp in zip(rows, targets, tpos, strict=True):
                g_full, g_err, g_emb = torch.autograd.grad(
                    t, (full, err, emb), retain_graph=True, allow_unused=True, materialize_grads=True
                )
                A[r, graph.nodes("latent")] = g_full[pos, idx] * frozen.acts[pos, idx]
                A[r, graph.nodes("error")] = (g_err * err.detach()).sum(-1)
                tok = (g_emb * emb.detach()).sum(-1)
                if bug == "mean":
                    tok = (g_emb * emb.detach()).mean(-1)
                if bug == "own":
                    tok = tok * (torch.arange(graph.n_pos) == tp)
                A[r, graph.nodes("token")] = tok
        return A

    return impl


@pytest.mark.parametrize(
    ("bug", "code", "words"),
    [("mean", "token_edges_scaled", "one over d_model"), ("own", "token_edges_own_position", "own position")],
)
def test_attribution_token_edges(bug, code, words):
    err = assert_fails(checks.test_attribution_edges, _edges(bug), code)
    assert words in err.message and "latent and error edges are right" in err.message


def _quantile_middle(middle):
    def impl(acts, k, n_bands=4):
        flat = acts.clone()
        flat[:, 0] = 0
        flat = flat.flatten()
        top, seq_len, out = flat.max(), acts.shape[1], []
        for j in range(n_bands):
            hi, lo = top * (n_bands - j) / n_bands, top * (n_bands - j - 1) / n_bands
            inb = (flat > lo) & (flat <= hi)
            d = torch.where(inb, (flat - middle(lo, hi)).abs(), torch.full_like(flat, float("inf")))
            c = d.argsort()[: min(k, int(inb.sum()))]
            c = c[flat[c].argsort(descending=True)]
            out.append((flat[c], c // seq_len, c % seq_len))
        return out

    return impl


def test_quantile_wrong_middle_named():
    err = assert_fails(checks.test_quantile_examples, _quantile_middle(lambda lo, hi: lo + hi / 2), "wrong_middle")
    assert "lo + hi / 2" in err.message and "the largest in-band" not in err.message


def test_quantile_half_width_lists_both_causes():
    # (hi - lo) / 2 lies at or below every band's bottom but the lowest (where it is the middle): the smallest fit too
    err = assert_fails(checks.test_quantile_examples, _quantile_middle(lambda lo, hi: (hi - lo) / 2), "not_closest")
    assert "possible causes" in err.hint and "(hi - lo) / 2 (the half-width" in err.hint


def test_quantile_largest_lists_both_causes():
    err = assert_fails(checks.test_quantile_examples, _quantile_middle(lambda lo, hi: lo + hi), "largest")
    assert "possible causes" in err.hint and "lo + hi (the / 2 forgotten)" in err.hint


# ---- mistakes the shipped inputs hide or blur (tests/part6b_circuits_sensitivity.py)


def test_transcoder_input_normalised_again():
    def impl(tc, x):
        return ref.transcoder_forward(tc, F.layer_norm(x, x.shape[-1:]))

    err = assert_fails(checks.test_transcoder_forward, impl, "input_normalised")
    assert "normalises it first" in err.hint


def _splice(read_at=None, write=None, recovered=None, tc_of=None):
    def impl(model, tc, tokens):
        t = tc if tc_of is None else tc_of(tc)
        seen = {}
        hooks = [(read_at or t.hook_name, lambda a, hook: seen.__setitem__("x", a))]
        out = (lambda a, hook: t(seen["x"])) if write is None else (lambda a, hook: write(t, seen["x"], a))
        loss = lambda h: model.run_with_hooks(tokens, return_type="loss", fwd_hooks=h).item()
        c, r = loss([]), loss([*hooks, (t.hook_name_out, out)])
        z = loss([(t.hook_name_out, lambda a, hook: torch.zeros_like(a))])
        rec = (z - r) / (z - c) if recovered is None else recovered(c, r, z)
        return {"clean": c, "replaced": r, "zero_ablated": z, "recovered": rec}

    return impl


@pytest.mark.parametrize("where", ["blocks.0.hook_resid_pre", "blocks.0.hook_attn_out"])
def test_replacement_other_hook_point_named(where):
    err = assert_fails(checks.test_replacement_losses, _splice(read_at=where), "input_hook")
    assert where in err.message


def test_replacement_rescaled_output_named():
    def write(tc, x, act):
        out = tc(x)
        return out * act.norm(dim=-1, keepdim=True) / out.norm(dim=-1, keepdim=True)

    err = assert_fails(checks.test_replacement_losses, _splice(write=write), "rescaled_output")
    assert "1.5 × the shipped" in err.message and "stale" not in err.message + err.hint


def test_replacement_recovered_over_zero_minus_replaced():
    rec = lambda c, r, z: 1 - (r - c) / (z - r)
    err = assert_fails(checks.test_replacement_losses, _splice(recovered=rec), "recovered_denominator_replaced")
    assert "zero - replaced instead of the whole gap" in err.hint and "stale" not in err.hint


def test_replacement_ignoring_the_given_transcoder():
    shipped = lambda tc: checks._inputs(torch.device("cpu"))[1]
    err = assert_fails(checks.test_replacement_losses, _splice(tc_of=shipped), "transcoder_output")
    assert "unchanged from the shipped" in err.message


def test_replacement_second_call_without_state_is_not_called_stale():
    # right except on the second call's tokens, by a function of this call's tokens alone: no state kept
    second = checks._inputs(torch.device("cpu"))[2][4:8, :48]
    right = _splice()

    def impl(model, tc, tokens):
        out = right(model, tc, tokens)
        if tokens.shape == second.shape and torch.equal(tokens, second):
            out["replaced"] *= 1.001
        return out

    err = assert_fails(checks.test_replacement_losses, impl, "second_call")
    assert "state kept between calls is unlikely" in err.hint and "the first call was right" not in err.message


def test_token_views_row_for_column():
    de = lambda model, tc, latent: (model.W_E @ tc.W_enc)[latent]
    err = assert_fails(checks.test_latent_de_embedding, de, "wrong_axis")
    assert "row `latent` of W_E @ W_enc" in err.hint and "shape cannot tell" in err.hint
    logit = lambda model, tc, latent: (tc.W_dec @ model.W_U)[:, latent]
    err = assert_fails(checks.test_latent_logit_effect, logit, "wrong_axis")
    assert "column `latent` of W_dec @ W_U" in err.hint


def test_token_views_through_the_mlp_weights():
    logit = lambda model, tc, latent: tc.W_dec[latent] @ model.W_out[0] @ model.W_U
    err = assert_fails(checks.test_latent_logit_effect, logit, "through_W_out")
    assert "leave W_out out" in err.hint and "(1x128 and 512x128)" in err.message
    de = lambda model, tc, latent: model.W_E @ model.W_in[0] @ tc.W_enc[:, latent]
    err = assert_fails(checks.test_latent_de_embedding, de, "through_W_in")
    assert "leave W_in out" in err.hint


def test_attribution_frozen_acts_written_in_place():
    def impl(model, tc, frozen, graph):
        lat = frozen.acts  # the caller's tensor, not a copy
        vals = frozen.acts[graph.latent_pos, graph.latent_idx].detach().clone().requires_grad_(True)
        with torch.enable_grad():
            lat[graph.latent_pos, graph.latent_idx] = vals
        return ref.attribution_edges(model, tc, frozen, graph)

    err = assert_fails(checks.test_attribution_edges, impl, "inplace")
    assert "frozen.acts" in err.message and "grad_fn=" in err.message
