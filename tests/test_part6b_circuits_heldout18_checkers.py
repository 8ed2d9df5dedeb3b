"""Proofs: a token view turned into ranks, divided by the mean W_E row norm, or turned into a probability change,
head 0's attention pattern used for every head, adjacency rows filled in another order than the targets, and a
band returned as (seq_idx, pos_idx, values) are each named."""

from __future__ import annotations

import dataclasses

import torch

import tests.part6b_circuits as checks
from solutions import part6b_circuits as ref
from tests.proving import assert_fails


def test_de_embedding_ranks():
    impl = lambda model, tc, i: ref.latent_de_embedding(model, tc, i).argsort().argsort().float()
    assert "ranks" in assert_fails(checks.test_latent_de_embedding, impl, "ranks").message


def test_de_embedding_divided_by_mean_embedding_norm():
    impl = lambda model, tc, i: ref.latent_de_embedding(model, tc, i) / model.W_E.norm(dim=-1).mean()
    failure = assert_fails(checks.test_latent_de_embedding, impl, "named_factor")
    assert "mean L2 norm of a W_E row" in failure.message


def test_logit_effect_probability_change():
    def impl(model, tc, i):
        e = ref.latent_logit_effect(model, tc, i)
        return (model.b_U + e).softmax(-1) - model.b_U.softmax(-1)

    assert "softmax(b_U + e)" in assert_fails(checks.test_latent_logit_effect, impl, "probabilities").message


def test_linearised_one_head_pattern():
    def impl(model, tc, frozen, embeds, *rest):
        one = dataclasses.replace(frozen, pattern=frozen.pattern[:1].expand_as(frozen.pattern))
        return ref.linearised_forward(model, tc, one, embeds, *rest)

    assert "OWN attention pattern" in assert_fails(checks.test_linearised_forward, impl, "one_head_pattern").hint


def test_attribution_rows_misaligned():
    def impl(model, tc, frozen, graph):
        adj = ref.attribution_edges(model, tc, frozen, graph)
        rows = torch.cat(
            [torch.arange(graph.n_nodes)[graph.nodes("latent")], torch.arange(graph.n_nodes)[graph.nodes("logit")]]
        )
        out = adj.clone()
        out[rows] = adj[rows.roll(1)]
        return out

    assert "misaligned" in assert_fails(checks.test_attribution_edges, impl, "rows_misaligned").hint


def test_band_tuple_order():
    impl = lambda acts, k, n_bands=4: [(s, p, v) for v, s, p in ref.quantile_examples(acts, k, n_bands)]
    assert "(values, seq_idx, pos_idx)" in assert_fails(checks.test_quantile_examples, impl, "outputs_order").hint
