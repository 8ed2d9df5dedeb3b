"""Proofs for the part 6b checkers from the fresh8 held-out trial (the others are in test_part6b_circuits_checkers.py
and ..._heldout*_checkers.py)."""

from __future__ import annotations

import pytest
import torch

import tests.part6b_circuits as checks
from solutions import part6b_circuits as ref
from tests import part6b_circuits_mistakes as known
from tests.proving import assert_fails


def _forward(bug):
    def transcoder_forward(tc, x):
        pre = x @ tc.W_enc + tc.b_enc
        th = tc.threshold.exp() if bug == "exp" else tc.threshold
        acts = pre * (pre > th)
        out = acts @ tc.W_dec + tc.b_dec
        out = out + (x @ tc.W_skip.T if tc.W_skip is not None else x)
        return acts, out

    return transcoder_forward


@pytest.mark.parametrize("bug, code", [("exp", "threshold_exp"), ("identity", "identity_skip")])
def test_forward_fresh8(bug, code):
    assert_fails(checks.test_transcoder_forward, _forward(bug), code)


def _losses_logits(model, tc, tokens):
    seen = {}
    run = lambda hooks, rt="loss": model.run_with_hooks(tokens, return_type=rt, fwd_hooks=hooks).mean().item()
    hooks = [
        (tc.hook_name, lambda a, hook: seen.__setitem__("x", a)),
        (tc.hook_name_out, lambda a, hook: tc(seen["x"])),
    ]
    clean, replaced = run([]), run(hooks, "logits")
    zero = run([(tc.hook_name_out, lambda a, hook: torch.zeros_like(a))])
    return {"clean": clean, "replaced": replaced, "zero_ablated": zero, "recovered": (zero - replaced) / (zero - clean)}


def test_replacement_losses_mean_of_logits():
    assert_fails(checks.test_replacement_losses, _losses_logits, "logits_mean")


def test_de_embedding_sorted():
    impl = lambda m, tc, i: ref.latent_de_embedding(m, tc, i).sort(descending=True).values
    assert_fails(checks.test_latent_de_embedding, impl, "sorted")


def test_de_embedding_bos_dropped():
    assert_fails(
        checks.test_latent_de_embedding, lambda m, tc, i: ref.latent_de_embedding(m, tc, i)[1:], "token_dropped"
    )


def test_logit_effect_standardised():
    def impl(m, tc, i):
        e = ref.latent_logit_effect(m, tc, i)
        return (e - e.mean()) / e.std()

    assert_fails(checks.test_latent_logit_effect, impl, "standardised")


@pytest.mark.parametrize("bug", ["b_O_per_head", "final_no_attn"])
def test_linearised_fresh8(bug):
    def impl(model, tc, frozen, embeds, latents=None, error=None):
        return known.variant_forward(model, tc, frozen, embeds, latents, error, **{bug: True})

    assert_fails(checks.test_linearised_forward, impl, bug)


def test_node_influence_global_max():
    def impl(adjacency, logit_weights):
        a = adjacency.abs() / adjacency.abs().max()
        eye = torch.eye(len(a), dtype=a.dtype, device=a.device)
        return logit_weights @ (torch.linalg.inv(eye - a) - eye)

    assert_fails(checks.test_node_influence, impl, "global_max")


def test_quantile_n_bands_hard_coded():
    impl = lambda acts, k, n_bands=4: ref.quantile_examples(acts, k, 4)
    assert_fails(checks.test_quantile_examples, impl, "n_bands_ignored")


def test_quantile_k_hard_coded():
    impl = lambda acts, k, n_bands=4: ref.quantile_examples(acts, 3, n_bands)
    assert_fails(checks.test_quantile_examples, impl, "arguments_ignored")


# ---- fresh9 held-out trial -------------------------------------------------------------------------------------
def _forward9(bug):
    def transcoder_forward(tc, x):
        pre = x @ tc.W_enc + tc.b_enc
        acts = pre * ((pre.abs() if bug == "abs" else pre) > tc.threshold)
        if bug == "b_enc_out":
            out = acts @ tc.W_dec + tc.b_enc
        elif bug == "threshold_out":
            out = acts @ tc.W_dec + tc.threshold
        else:
            out = acts @ tc.W_dec + tc.b_dec
        return acts, out + (x @ tc.W_skip.T if tc.W_skip is not None else 0)

    return transcoder_forward


@pytest.mark.parametrize(
    "bug, code, says",
    [
        ("abs", "abs_gate", "magnitude"),
        ("b_enc_out", "latent_output_mix", "encoder's bias"),
        ("threshold_out", "latent_output_mix", "latent-side tensor"),
    ],
)
def test_forward_fresh9(bug, code, says):
    failure = assert_fails(checks.test_transcoder_forward, _forward9(bug), code)
    assert says in failure.hint


def test_de_embedding_top_ids():
    impl = lambda model, tc, i: (model.W_E @ tc.W_enc[:, i]).topk(20).indices
    assert_fails(checks.test_latent_de_embedding, impl, "token_ids")


def test_linearised_error_added():
    def linearised_forward(model, tc, frozen, embeds, latents=None, error=None):
        return ref.linearised_forward(
            model, tc, frozen, embeds, latents, None if error is None else error + frozen.error
        )

    assert_fails(checks.test_linearised_forward, linearised_forward, "error_added")


def test_influence_signed_row_sums():
    def node_influence(adjacency, logit_weights):
        a = adjacency.abs() / adjacency.sum(-1, keepdim=True).clamp_min(1e-12)
        eye = torch.eye(len(a), dtype=a.dtype)
        return logit_weights @ (torch.linalg.solve(eye - a, eye) - eye)

    assert_fails(checks.test_node_influence, node_influence, "signed_normaliser")


def test_de_embedding_gated_fresh10():
    """The de-embedding gated by the JumpReLU threshold: zeros where the values aren't, named as a gate."""
    gated = lambda m, tc, i: (lambda v: v * (v > tc.threshold[i]))(ref.latent_de_embedding(m, tc, i))
    assert_fails(checks.test_latent_de_embedding, gated, "gated")


# fresh12 held-out trial
def _forward_fresh12(bug):
    def transcoder_forward(tc, x):
        if bug == "late_b_enc":  # the gate on x W_enc, b_enc added after it
            z = x @ tc.W_enc
            acts = z * z.gt(tc.threshold) + tc.b_enc
        else:
            pre = x @ tc.W_enc + tc.b_enc
            acts = pre * pre.gt(tc.threshold)
        if bug == "ternary":  # the conditional expression takes the whole sum
            out = acts @ tc.W_dec + tc.b_dec + x @ tc.W_skip.T if tc.W_skip is not None else 0
        else:
            out = acts @ tc.W_dec + tc.b_dec + tc.skip(x)
        return acts, out

    return transcoder_forward


@pytest.mark.parametrize("bug, code", [("late_b_enc", "b_enc_after_gate"), ("ternary", "ternary_skip")])
def test_forward_fresh12(bug, code):
    assert_fails(checks.test_transcoder_forward, _forward_fresh12(bug), code)


def _replacement_fresh12(bug):
    def replacement_losses(model, tc, tokens):
        store = {}

        def write(act, hook):
            if bug == "batch_index":  # tc(x)[1]: sequence 1 of the batch, broadcast
                return tc(store["x"])[1]
            new = tc(store["x"])
            return torch.cat([act[:, :1], new[:, 1:]], dim=1) if bug == "bos_kept" else new

        loss = lambda hooks: model.run_with_hooks(tokens, return_type="loss", fwd_hooks=hooks).item()
        c = loss([])
        r = loss([(tc.hook_name, lambda a, hook: store.__setitem__("x", a.clone())), (tc.hook_name_out, write)])
        z = loss([(tc.hook_name_out, lambda a, hook: a.mul(0))])
        rec = 1 - (r - c) / c if bug == "relative" else (r - z) / (c - z)
        return {"clean": c, "replaced": r, "zero_ablated": z, "recovered": rec}

    return replacement_losses


@pytest.mark.parametrize("bug, code", [("batch_index", "batch_index"), ("bos_kept", "bos_kept")])
def test_replacement_fresh12(bug, code):
    assert_fails(checks.test_replacement_losses, _replacement_fresh12(bug), code)


def test_replacement_recovered_relative_fresh12():
    """1 - (r - c) / c and c / r agree to second order in (r - c) / c, which is small here: both are named."""
    failure = assert_fails(checks.test_replacement_losses, _replacement_fresh12("relative"), "recovered_ratio")
    assert "1 - (replaced - clean) / clean" in failure.hint and "ratio" in failure.hint


@pytest.mark.parametrize(
    "check, impl",
    [
        (checks.test_latent_de_embedding, lambda m, tc, i: (m.W_E * tc.W_enc[:, i]).sum(0)),
        (checks.test_latent_logit_effect, lambda m, tc, i: tc.W_dec[i]),
    ],
)
def test_token_view_d_model_fresh12(check, impl):
    failure = assert_fails(check, impl, "shape")
    assert "128 = d_model" in failure.hint


@pytest.mark.parametrize("check", [checks.test_latent_de_embedding, checks.test_latent_logit_effect])
def test_token_view_unit_norm_fresh12(check):
    fn = ref.latent_de_embedding if check is checks.test_latent_de_embedding else ref.latent_logit_effect
    impl = lambda m, tc, i: (lambda v: v / v.norm())(fn(m, tc, i))
    assert_fails(check, impl, "normalised_output")


def test_influence_rows_of_B_fresh12():
    def node_influence(adjacency, logit_weights):
        eye = torch.eye(len(adjacency), dtype=adjacency.dtype)
        B = torch.linalg.inv(eye - adjacency.abs()) - eye
        return logit_weights @ (B / B.sum(-1, keepdim=True).clamp_min(1e-12))

    assert_fails(checks.test_node_influence, node_influence, "rows_of_B")


def test_edges_without_allow_unused_fresh12():
    """One target at a time without allow_unused=True: torch's error gets a hint."""

    def attribution_edges(model, tc, frozen, graph):
        with torch.enable_grad():
            emb = frozen.embeds.detach().clone().requires_grad_(True)
            err = frozen.error.detach().clone().requires_grad_(True)
            val = frozen.acts[graph.latent_pos, graph.latent_idx].detach().clone().requires_grad_(True)
            lat = torch.zeros_like(frozen.acts).index_put((graph.latent_pos, graph.latent_idx), val)
            pre, _ = ref.linearised_forward(model, tc, frozen, emb, lat, err)
            torch.autograd.grad(pre[graph.latent_pos[0], graph.latent_idx[0]], (val, err, emb), retain_graph=True)
        return torch.zeros(graph.n_nodes, graph.n_nodes)

    failure = assert_fails(checks.test_attribution_edges, attribution_edges, "unused_grad")
    assert "allow_unused=True" in failure.hint
