"""Proofs for part 6b's diagnoses added after the fresh29 held-out measurement: small shares pruned before the path
sum (read back on a graph with small edges), the frozen pattern softmaxed again, the error added before LN2, and the
latent's vector changed in a way that is named (a reshape where a transpose belongs, centred, sent through W_skip)."""

from __future__ import annotations

import torch

import tests.part6b_circuits as checks
from tests.proving import assert_fails


def _pruned_influence(threshold):
    def impl(adjacency, w):
        a = adjacency.abs()
        a = a / a.sum(-1, keepdim=True).clamp_min(1e-12)
        a = torch.where(a < threshold, torch.zeros_like(a), a)
        eye = torch.eye(len(a), dtype=a.dtype, device=a.device)
        return w @ (torch.linalg.inv(eye - a) - eye)

    return impl


def test_small_shares_pruned_are_named_with_the_threshold():
    for t in (0.01, 0.05):
        failure = assert_fails(checks.test_node_influence, _pruned_influence(t), "pruned_edges")
        assert f"below {t:g} set to 0" in failure.message + failure.hint
        assert "share < t dropped" in failure.hint and "every edge" in failure.hint


def _linearised(mode):
    def impl(model, tc, frozen, embeds, latents=None, error=None):
        ln = lambda v, s: (v - v.mean(-1, keepdim=True)) / s
        x1 = ln(embeds, frozen.ln1_scale)
        v = torch.einsum("kd,hde->hke", x1, model.W_V[0]) + model.b_V[0][:, None]
        pattern = frozen.pattern.softmax(-1) if mode == "softmax" else frozen.pattern
        resid_mid = embeds + torch.einsum("hqk,hke,hed->qd", pattern, v, model.W_O[0]) + model.b_O[0]
        error = frozen.error if error is None else error
        if mode == "err_ln2":
            resid_mid = resid_mid + error
        x = ln(resid_mid, frozen.ln2_scale)
        pre = x @ tc.W_enc + tc.b_enc
        f = pre * frozen.active if latents is None else latents
        mlp = f @ tc.W_dec + tc.b_dec + tc.skip(x) + (0 if mode == "err_ln2" else error)
        return pre, ln(resid_mid + mlp, frozen.final_scale) @ model.W_U + model.b_U

    return impl


def test_pattern_softmaxed_again_is_named():
    failure = assert_fails(checks.test_linearised_forward, _linearised("softmax"), "pattern_softmaxed")
    assert "softmax(frozen.pattern)" in failure.hint


def test_error_before_ln2_is_named():
    failure = assert_fails(checks.test_linearised_forward, _linearised("err_ln2"), "error_in_ln2")
    assert "before LN2" in failure.hint and "feeds the encoder" in failure.hint


def test_encoder_column_centred_over_latents_is_named():
    impl = lambda model, tc, latent: model.W_E @ (tc.W_enc[:, latent] - tc.W_enc.mean(1))
    failure = assert_fails(checks.test_latent_de_embedding, impl, "centred")
    assert "W_enc.mean(1)" in failure.hint and "over the latents" in failure.hint


def test_encoder_reshaped_not_transposed_is_named():
    impl = lambda model, tc, latent: model.W_E @ tc.W_enc.reshape(tc.W_enc.shape[1], tc.W_enc.shape[0])[latent]
    failure = assert_fails(checks.test_latent_de_embedding, impl, "reshape_not_transpose")
    assert "W_enc.reshape(d_sae, d_model)[latent]" in failure.hint and "memory order" in failure.hint


def test_decoder_reshaped_not_transposed_is_named():
    impl = lambda model, tc, latent: tc.W_dec.reshape(tc.W_dec.shape[1], tc.W_dec.shape[0])[:, latent] @ model.W_U
    failure = assert_fails(checks.test_latent_logit_effect, impl, "reshape_not_transpose")
    assert "W_dec.reshape(d_model, d_sae)[:, latent]" in failure.hint


def test_decoder_row_through_skip_is_named():
    impl = lambda model, tc, latent: (tc.W_dec[latent] @ tc.W_skip.T) @ model.W_U
    failure = assert_fails(checks.test_latent_logit_effect, impl, "through_skip")
    assert "W_dec[latent] @ W_skip.T" in failure.hint and "separate path" in failure.hint
