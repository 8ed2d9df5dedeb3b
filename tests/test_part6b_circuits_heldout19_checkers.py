"""Proofs: a transcoder spliced in at the last position only (the loss never sees it), a token view shifted by the
latent's encoder bias, the attention patterns summed or averaged over the heads and applied to every head, and one
gradient of the sum of all targets written into every adjacency row are each named."""

from __future__ import annotations

import dataclasses

import torch

import tests.part6b_circuits as checks
from solutions import part6b_circuits as ref
from tests.proving import assert_fails


def _losses_last_position(model, tc, tokens):
    seen = {}

    def write(act, hook):
        act = act.clone()
        act[:, -1] = tc(seen["x"])[:, -1]
        return act

    loss = lambda hooks: model.run_with_hooks(tokens, return_type="loss", fwd_hooks=hooks).item()
    clean = loss([])
    replaced = loss([(tc.hook_name, lambda a, hook: seen.__setitem__("x", a)), (tc.hook_name_out, write)])
    zero = loss([(tc.hook_name_out, lambda a, hook: torch.zeros_like(a))])
    return {"clean": clean, "replaced": replaced, "zero_ablated": zero, "recovered": (zero - replaced) / (zero - clean)}


def test_replacement_last_position_only():
    failure = assert_fails(checks.test_replacement_losses, _losses_last_position, "partial_splice")
    assert "last position only" in failure.message and "every position" in failure.hint


def test_de_embedding_minus_encoder_bias():
    impl = lambda model, tc, i: model.W_E @ tc.W_enc[:, i] - tc.b_enc[i]
    assert "b_enc[latent]" in assert_fails(checks.test_latent_de_embedding, impl, "bias_offset").message


def test_linearised_pattern_summed_over_heads():
    def impl(model, tc, frozen, embeds, *rest):
        merged = frozen.pattern.sum(0, keepdim=True).expand_as(frozen.pattern)
        return ref.linearised_forward(model, tc, dataclasses.replace(frozen, pattern=merged), embeds, *rest)

    assert "summed over the heads" in assert_fails(checks.test_linearised_forward, impl, "pattern_summed").hint


def test_attribution_one_gradient_of_the_sum():
    def impl(model, tc, frozen, graph):
        adj = ref.attribution_edges(model, tc, frozen, graph)
        rows = torch.cat(
            [torch.arange(graph.n_nodes)[graph.nodes("latent")], torch.arange(graph.n_nodes)[graph.nodes("logit")]]
        )
        out = adj.clone()
        out[rows] = adj[rows].sum(0)
        return out

    failure = assert_fails(checks.test_attribution_edges, impl, "summed_targets")
    assert "one gradient per target" in failure.hint


def test_attribution_one_target_row_everywhere():
    def impl(model, tc, frozen, graph):
        adj = ref.attribution_edges(model, tc, frozen, graph)
        rows = torch.arange(graph.n_nodes)[graph.nodes("latent")]
        out = adj.clone()
        out[torch.cat([rows, torch.arange(graph.n_nodes)[graph.nodes("logit")]])] = adj[rows[1]]
        return out

    assert "same edges" in assert_fails(checks.test_attribution_edges, impl, "identical_rows").message
