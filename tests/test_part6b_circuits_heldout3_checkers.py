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
