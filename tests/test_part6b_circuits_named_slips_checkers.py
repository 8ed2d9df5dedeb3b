"""Proofs for part 6b's slips named by their own candidate (tests/part6b_circuits_named_slips.py): the skip term
added only where a latent fires (caught on tokens where none fires), decoder rows normalised, the cross-entropy shift
reversed or missing, the recovered fraction with parentheses dropped, the OV path added to the de-embedding, and the
heads averaged instead of summed."""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import solutions.part6b_circuits as ref
import tests.part6b_circuits as checks
from tests.proving import assert_fails


def _forward(mode):
    def impl(tc, x):
        pre = x @ tc.W_enc + tc.b_enc
        acts = torch.where(pre > tc.threshold, pre, torch.zeros_like(pre))
        W_dec = tc.W_dec / tc.W_dec.norm(dim=-1, keepdim=True) if mode == "unit" else tc.W_dec
        out = acts @ W_dec + tc.b_dec
        if tc.W_skip is not None:
            skip = x @ tc.W_skip.T
            out = out + (skip * (acts > 0).any(-1, keepdim=True) if mode == "gated" else skip)
        return acts, out

    return impl


def test_skip_only_where_a_latent_fires_is_caught_on_silent_tokens():
    failure = assert_fails(checks.test_transcoder_forward, _forward("gated"), "skip_gated")
    assert "also where no latent fires" in failure.hint and "no latent fires" in failure.message


def test_decoder_rows_normalised_is_named():
    failure = assert_fails(checks.test_transcoder_forward, _forward("unit"), "decoder_unit")
    assert "unit norm" in failure.hint


def _losses(mode):
    def impl(model, tc, tokens):
        seen = {}

        def loss(hooks):
            logits = model.run_with_hooks(tokens, fwd_hooks=hooks)
            if mode == "reversed":
                return F.cross_entropy(logits[:, 1:].flatten(0, 1), tokens[:, :-1].flatten()).item()
            if mode == "unshifted":
                return F.cross_entropy(logits.flatten(0, 1), tokens.flatten()).item()
            return F.cross_entropy(logits[:, :-1].flatten(0, 1), tokens[:, 1:].flatten()).item()

        c = loss([])
        r = loss(
            [
                (tc.hook_name, lambda a, hook: seen.__setitem__("x", a)),
                (tc.hook_name_out, lambda a, hook: tc(seen["x"])),
            ]
        )
        z = loss([(tc.hook_name_out, lambda a, hook: torch.zeros_like(a))])
        rec = (
            (z - r) / z - c if mode == "precedence" else z - r / (z - c) if mode == "precedence2" else (z - r) / (z - c)
        )
        return {"clean": c, "replaced": r, "zero_ablated": z, "recovered": rec}

    return impl


def test_cross_entropy_shift_reversed_or_missing_is_named():
    for mode, what in (("reversed", "reversed"), ("unshifted", "missing")):
        failure = assert_fails(checks.test_replacement_losses, _losses(mode), "shift_reversed")
        assert what in failure.message and "tokens[:, 1:]" in failure.hint


def test_recovered_with_parentheses_dropped_is_named():
    failure = assert_fails(checks.test_replacement_losses, _losses("precedence"), "recovered_precedence")
    assert "(zero - replaced) / zero - clean" in failure.hint and "precedence" in failure.hint
    failure = assert_fails(checks.test_replacement_losses, _losses("precedence2"), "recovered_precedence")
    assert "zero - replaced / (zero - clean)" in failure.hint


def test_ov_path_added_to_the_de_embedding_is_named():
    def impl(model, tc, latent):
        ov = einops.einsum(model.W_V[0], model.W_O[0], "h d e, h e m -> d m")
        return (model.W_E + model.W_E @ ov) @ tc.W_enc[:, latent]

    failure = assert_fails(checks.test_latent_de_embedding, impl, "ov_path")
    assert "direct path plus the OV path" in failure.hint


def test_heads_averaged_is_named_with_the_factor():
    def impl(model, tc, frozen, embeds, latents=None, error=None):
        ln = lambda v, s: (v - v.mean(-1, keepdim=True)) / s
        v = einops.einsum(ln(embeds, frozen.ln1_scale), model.W_V[0], "k d, h d e -> h k e") + model.b_V[0][:, None]
        z = einops.einsum(frozen.pattern, v, "h q k, h k e -> h q e")
        resid_mid = embeds + einops.einsum(z, model.W_O[0], "h q e, h e d -> h q d").mean(0) + model.b_O[0]
        x = ln(resid_mid, frozen.ln2_scale)
        pre = x @ tc.W_enc + tc.b_enc
        f = pre * frozen.active if latents is None else latents
        mlp_out = f @ tc.W_dec + tc.b_dec + tc.skip(x) + (frozen.error if error is None else error)
        return pre, ln(resid_mid + mlp_out, frozen.final_scale) @ model.W_U + model.b_U

    failure = assert_fails(checks.test_linearised_forward, impl, "heads_mean")
    assert "1/n_heads" in failure.hint


def test_reference_still_passes_the_silent_token_input():
    tc = checks.known.synthetic_transcoder(torch.device("cpu"))
    x = torch.randn(3, 5, tc.d_in, generator=torch.Generator().manual_seed(3))
    silent = checks.slips.with_silent_tokens(tc, x)
    acts, _ = ref.transcoder_forward(tc, silent)
    fires = (acts != 0).any(-1)
    assert int((~fires).sum()) == len(checks.slips.SILENT_AT) and fires.sum() > 0
