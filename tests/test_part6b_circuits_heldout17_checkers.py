"""Proofs: a TopK gate in place of the JumpReLU, b_dec added to the encoder's input, `recovered` with a difference
taken the other way round, b_dec mixed into the logit-effect direction, the recorded logits returned by
linearised_forward, BOS zeroed at a wrong flat stride, and torch.ones where torch.eye belongs in (I - Â)⁻¹ are each
named."""

from __future__ import annotations

import torch

import tests.part6b_circuits as checks
from solutions import part6b_circuits as ref
from tests.proving import assert_fails


def _forward(mode):
    def impl(tc, x):
        pre = ((x + tc.b_dec) if mode == "plus" else x) @ tc.W_enc + tc.b_enc
        if mode == "topk":
            vals, ids = pre.topk(24, dim=-1)
            acts = torch.zeros_like(pre).scatter(-1, ids, vals)
        else:
            acts = pre * (pre > tc.threshold)
        out = acts @ tc.W_dec + tc.b_dec
        return acts, out if tc.W_skip is None else out + x @ tc.W_skip.T

    return impl


def test_topk_gate():
    assert "24 largest" in assert_fails(checks.test_transcoder_forward, _forward("topk"), "topk_gate").hint


def test_b_dec_added_to_input():
    assert "x + b_dec" in assert_fails(checks.test_transcoder_forward, _forward("plus"), "b_dec_input").hint


def test_recovered_sign():
    def impl(model, tc, tokens):
        out = ref.replacement_losses(model, tc, tokens)
        return {**out, "recovered": (out["replaced"] - out["zero_ablated"]) / (out["zero_ablated"] - out["clean"])}

    assert "other way round" in assert_fails(checks.test_replacement_losses, impl, "recovered_sign").hint


def test_logit_effect_bias_subtracted():
    impl = lambda model, tc, i: (tc.W_dec[i] - tc.b_dec) @ model.W_U
    assert "W_dec[latent] - b_dec" in assert_fails(checks.test_latent_logit_effect, impl, "bias_direction").hint


def test_linearised_recorded_logits():
    def impl(model, tc, frozen, embeds, latents=None, error=None):
        return ref.linearised_forward(model, tc, frozen, embeds, latents, error)[0], frozen.logits

    assert "frozen.logits" in assert_fails(checks.test_linearised_forward, impl, "recorded_output").hint


def test_quantile_bos_stride():
    def impl(acts, k, n_bands=4):
        zeroed = acts.clone()
        zeroed.view(-1)[:: acts.shape[0]] = 0
        return _bands(zeroed, k, n_bands)

    assert "flat[::6]" in assert_fails(checks.test_quantile_examples, impl, "bos_positions").message


def _bands(flat2d, k, n_bands):
    seq, flat = flat2d.shape[1], flat2d.flatten()
    top, out = flat.max(), []
    for j in range(n_bands):
        lo, hi = top * (n_bands - j - 1) / n_bands, top * (n_bands - j) / n_bands
        ids = ((flat > lo) & (flat <= hi)).nonzero().flatten()
        ids = ids[(flat[ids] - (lo + hi) / 2).abs().argsort()[:k]]
        ids = ids[flat[ids].argsort(descending=True)]
        out.append((flat[ids], ids // seq, ids % seq))
    return out


def test_influence_ones_identity():
    def impl(adjacency, w):
        a = adjacency.abs()
        a = a / a.sum(1, keepdim=True).clamp_min(1e-12)
        eye = torch.ones(len(a), len(a))
        return w @ (torch.linalg.inv(eye - a) - torch.eye(len(a)))

    err = assert_fails(checks.test_node_influence, impl, "ones_identity")
    assert "`eye` is a matrix of ones" in err.message and "torch.eye(n)" in err.hint
