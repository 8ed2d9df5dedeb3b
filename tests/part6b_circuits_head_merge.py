"""linearised_forward merging the heads' outputs with a reshape that does not move the head axis (held-out round BA):
z is [head q d_head]; z.reshape(q, head * d_head) regroups memory, so each row mixes several queries of one head, and
the product with W_O.reshape(head * d_head, d_model) pairs them with the wrong heads' rows."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

HEAD_MERGE = {
    "heads_reshaped": "z [head q d_head] was reshaped to [q, head·d_head] without moving the head axis next to "
    "d_head first: a reshape regroups memory, it does not move axes, so the rows mix queries. Use "
    "z.permute(1, 0, 2).reshape(q, -1) @ W_O.reshape(-1, d_model), or einsum 'h q e, h e d -> q d'",
}


def forward(model: Any, tc: Any, frozen: Any, embeds: Tensor, latents=None, error=None) -> tuple[Tensor, Tensor]:
    """The local replacement model with the heads merged by z.reshape(q, head * d_head) (no permute)."""
    ln = lambda v, s: (v - v.mean(-1, keepdim=True)) / s
    v = torch.einsum("kd,hde->hke", ln(embeds, frozen.ln1_scale), model.W_V[0]) + model.b_V[0][:, None]
    z = torch.einsum("hqk,hke->hqe", frozen.pattern, v)
    n_heads, q, d_head = z.shape
    attn = z.reshape(q, n_heads * d_head) @ model.W_O[0].reshape(n_heads * d_head, -1)
    mid = embeds + attn + model.b_O[0]
    x = ln(mid, frozen.ln2_scale)
    pre = x @ tc.W_enc + tc.b_enc
    f = pre * frozen.active if latents is None else latents
    resid = mid + f @ tc.W_dec + tc.b_dec + tc.skip(x) + (frozen.error if error is None else error)
    return pre, ln(resid, frozen.final_scale) @ model.W_U + model.b_U
