"""linearised_forward with one consumer fed a stale or half-normalised vector: the residual term or the attention
reading `frozen.embeds` (the prompt's embeddings) where the `embeds` argument belongs, or only one of the transcoder's
two readers of LN2 (the encoder, the skip) reading resid_mid / ln2_scale without the centring. At the prompt the
stale readings agree with the reference (embeds == frozen.embeds there); at shifted embeddings they do not."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

STALE_INPUTS = {
    "residual_frozen_embeds": "your values are those of the residual term read from frozen.embeds: resid_mid = "
    "frozen.embeds + attention(embeds) keeps the prompt's embeddings in the residual stream whatever `embeds` is "
    "passed; use the `embeds` argument everywhere: resid_mid = embeds + attention(LN1(embeds))",
    "attention_frozen_embeds": "your values are those of attention reading frozen.embeds: LN1(frozen.embeds) feeds "
    "W_V whatever `embeds` is passed, so the attention output stays the prompt's; use the `embeds` argument "
    "everywhere: x1 = LN1(embeds), then the values, the frozen pattern and W_O",
    "skip_uncentred": "your values are those of the skip term reading resid_mid / ln2_scale without the centring "
    "(the encoder reads the centred x): both read the same MLP input x = (resid_mid - mean) / ln2_scale; "
    "tc.skip(x) with that x",
    "encoder_uncentred": "your values are those of the encoder reading resid_mid / ln2_scale without the centring "
    "(the skip reads the centred x): both read the same MLP input x = (resid_mid - mean) / ln2_scale; "
    "pre = x @ W_enc + b_enc with that x",
}


def forward(
    model: Any, tc: Any, frozen: Any, embeds: Tensor, latents=None, error=None, *, code: str
) -> tuple[Tensor, Tensor]:
    """The local replacement model with the slip `code` of STALE_INPUTS."""
    ln = lambda v, s: (v - v.mean(-1, keepdim=True)) / s
    x1 = ln(frozen.embeds if code == "attention_frozen_embeds" else embeds, frozen.ln1_scale)
    v = torch.einsum("kd,hde->hke", x1, model.W_V[0]) + model.b_V[0][:, None]
    z = torch.einsum("hqk,hke->hqe", frozen.pattern, v)
    residual = frozen.embeds if code == "residual_frozen_embeds" else embeds
    mid = residual + torch.einsum("hqe,hed->qd", z, model.W_O[0]) + model.b_O[0]
    x, raw = ln(mid, frozen.ln2_scale), mid / frozen.ln2_scale
    pre = (raw if code == "encoder_uncentred" else x) @ tc.W_enc + tc.b_enc
    f = pre * frozen.active if latents is None else latents
    skip = tc.skip(raw if code == "skip_uncentred" else x)
    resid = mid + f @ tc.W_dec + tc.b_dec + skip + (frozen.error if error is None else error)
    return pre, ln(resid, frozen.final_scale) @ model.W_U + model.b_U
