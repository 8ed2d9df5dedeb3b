"""Proofs for part 6b after the fresh38 measurement: the transcoder's input layer-normed a second time by hand
(x.std, no eps; `input_normalised`), and the local replacement model's skip connection fed LN2 of the embeddings
r₀ instead of the MLP input (`skip_ln2_embeds`)."""

from __future__ import annotations

import einops
import torch

import tests.part6b_circuits as checks
from tests.proving import assert_fails


def test_input_layer_normed_again_by_hand():
    def transcoder_forward(tc, x):
        x = (x - x.mean(-1, keepdim=True)) / x.std(-1, keepdim=True)
        pre = x @ tc.W_enc + tc.b_enc
        acts = torch.where(pre > tc.threshold, pre, 0.0)
        out = acts @ tc.W_dec + tc.b_dec
        return acts, out if tc.W_skip is None else out + x @ tc.W_skip.T

    failure = assert_fails(checks.test_transcoder_forward, transcoder_forward, "input_normalised")
    assert "a second time" in failure.hint


def test_skip_fed_ln2_of_the_embeddings():
    def linearised_forward(model, tc, frozen, embeds, latents=None, error=None):
        ln = lambda v, s: (v - v.mean(-1, keepdim=True)) / s
        x1 = ln(embeds, frozen.ln1_scale)
        v = einops.einsum(x1, model.W_V[0], "k d, h d e -> h k e") + model.b_V[0][:, None]
        z = einops.einsum(frozen.pattern, v, "h q k, h k e -> h q e")
        mid = embeds + einops.einsum(z, model.W_O[0], "h q e, h e d -> q d") + model.b_O[0]
        x = ln(mid, frozen.ln2_scale)
        pre = x @ tc.W_enc + tc.b_enc
        f = pre * frozen.active if latents is None else latents
        skip = tc.skip(ln(embeds, frozen.ln2_scale))
        out = f @ tc.W_dec + tc.b_dec + skip + (frozen.error if error is None else error)
        return pre, ln(mid + out, frozen.final_scale) @ model.W_U + model.b_U

    assert_fails(checks.test_linearised_forward, linearised_forward, "skip_ln2_embeds")
