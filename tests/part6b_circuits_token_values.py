"""A reading of part 6b's attribution edges: the token columns are the right gradient d(target)/d(embeds) dotted with
another per-position vector than the embeddings (the LN1-normalised embeddings, the MLP input frozen.mlp_in, the
residual stream before LN2, the error, the position or token embedding alone): the token edges used a wrong value."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from tests import part6b_circuits_mistakes as known
from tests.checking import fail

CLOSE = {"rtol": 1e-3, "atol": 2e-4}


def _embed_grads(model: Any, tc: Any, frozen: Any, graph: Any) -> Tensor:
    """d(target)/d(embeds) of every target row of the linearised model: [n_targets, seq, d_model]."""
    pos, idx = graph.latent_pos, graph.latent_idx
    with torch.enable_grad():
        embeds = frozen.embeds.detach().clone().requires_grad_(True)
        latents = torch.zeros_like(frozen.acts)
        latents[pos, idx] = frozen.acts[pos, idx]
        pre, logits = known.variant_forward(model, tc, frozen, embeds, latents, frozen.error)
        targets = torch.cat([pre[pos, idx], logits[-1, graph.logit_ids]])
        grads = [torch.autograd.grad(t, embeds, retain_graph=True)[0] for t in targets]
    return torch.stack(grads).detach()


def _candidates(model: Any, frozen: Any, graph: Any) -> list[tuple[str, Tensor]]:
    e = frozen.embeds
    centred = e - e.mean(-1, keepdim=True)
    tok = model.W_E[torch.as_tensor(graph.token_ids, device=e.device)]
    mid = frozen.mlp_in * frozen.ln2_scale
    return [
        ("the LN1-normalised embeddings, (embeds - mean) / ln1_scale", centred / frozen.ln1_scale),
        ("the embeddings divided by ln1_scale", e / frozen.ln1_scale),
        ("the MLP input frozen.mlp_in (the LN2-normalised residual stream)", frozen.mlp_in),
        ("the residual stream before LN2 (mlp_in · ln2_scale)", mid),
        ("the error frozen.error", frozen.error),
        ("the token embedding alone, W_E[token] (no position embedding)", tok),
        ("the position embedding alone, embeds - W_E[token]", e - tok),
    ]


def token_values(got: Tensor, want: Tensor, run: tuple, graph: Any) -> None:
    """got/want: the target rows. Token columns equal to d(target)/d(embeds) · V for a named wrong V: fail naming V."""
    model, tc, frozen = run
    cols = graph.nodes("token")
    g_tok, w_tok = got[:, cols], want[:, cols]
    if torch.allclose(g_tok, w_tok, **CLOSE):
        return
    grads = _embed_grads(model, tc, frozen, graph)
    for what, value in _candidates(model, frozen, graph):
        edges = (grads * value[None].to(grads.dtype)).sum(-1)
        if torch.allclose(edges, w_tok, **CLOSE) or not torch.allclose(g_tok, edges, **CLOSE):
            continue
        rest = torch.ones(got.shape[1], dtype=torch.bool, device=got.device)
        rest[cols] = False
        others = (
            "the other columns are right"
            if torch.allclose(got[:, rest], want[:, rest], **CLOSE)
            else ("some other columns differ too")
        )
        fail(
            f"the token columns equal d(target)/d(embeds) · {what}, not · embeds; {others}",
            "a token node's value is its embedding (frozen.embeds, the residual stream before the block): a token "
            "edge is (d(target)/d(embeds) · embeds) summed over d_model, dotted with the embeddings themselves",
            code="token_value",
        )
