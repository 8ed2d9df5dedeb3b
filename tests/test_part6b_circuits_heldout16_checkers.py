"""Proofs: a de-embedding divided by the encoder column's squared norm, W_pos added again to `embeds`, token and
error edges summed without a dim (one total broadcast over positions), and the logit weights multiplied elementwise
into B's row sums are each named."""

from __future__ import annotations

import torch

import tests.part6b_circuits as checks
from solutions.part6b_circuits import linearised_forward as ref_forward
from tests.proving import assert_fails


def test_de_embedding_over_squared_norm():
    err = assert_fails(
        checks.test_latent_de_embedding,
        lambda model, tc, i: model.W_E @ tc.W_enc[:, i] / (tc.W_enc[:, i] @ tc.W_enc[:, i]),
        "latent_norm_factor",
    )
    assert "1/‖W_enc[:, latent]‖²" in err.hint


def test_linearised_pos_again():
    def impl(model, tc, frozen, embeds, latents=None, error=None):
        return ref_forward(model, tc, frozen, embeds + model.W_pos[: embeds.shape[0]], latents, error)

    assert_fails(checks.test_linearised_forward, impl, "pos_again")


def test_edges_sum_without_dim():
    def impl(model, tc, frozen, graph):
        A = torch.zeros(graph.n_nodes, graph.n_nodes)
        pos, idx = graph.latent_pos, graph.latent_idx
        with torch.enable_grad():
            embeds = frozen.embeds.detach().clone().requires_grad_(True)
            error = frozen.error.detach().clone().requires_grad_(True)
            values = frozen.acts[pos, idx].detach().clone().requires_grad_(True)
            latents = torch.zeros_like(frozen.acts)
            latents[pos, idx] = values
            pre, logits = ref_forward(model, tc, frozen, embeds, latents, error)
            targets = torch.cat([pre[pos, idx], logits[-1, graph.logit_ids]])
            n = list(range(graph.n_nodes))
            rows = n[graph.nodes("latent")] + n[graph.nodes("logit")]
            for row, t in zip(rows, targets, strict=True):
                gv, ge, gt = torch.autograd.grad(t, (values, error, embeds), retain_graph=True)
                A[row, graph.nodes("latent")] = gv * values.detach()
                A[row, graph.nodes("error")] = (ge * error.detach()).sum()
                A[row, graph.nodes("token")] = (gt * embeds.detach()).sum()
        return A

    err = assert_fails(checks.test_attribution_edges, impl, "token_total")
    assert "token and error" in err.hint


def test_influence_weights_elementwise():
    def impl(adjacency, w):
        a = adjacency.abs()
        a = a / a.sum(-1, keepdim=True).clamp_min(1e-12)
        eye = torch.eye(len(a), dtype=a.dtype)
        B = torch.linalg.inv(eye - a) - eye
        return (B * w[:, None]).sum(1)

    assert_fails(checks.test_node_influence, impl, "weights_elementwise")
