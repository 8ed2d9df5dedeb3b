"""Proofs for part 6b's diagnoses added after the fresh32 held-out measurement: the replacement written as
acts @ W_dec alone (b_dec and the skip left out), zero-ablation at another hook point than the MLP's output, the
decoder column W_dec[:, i] where the row belongs (a shape error), and two linearised-forward slips (LN1's scale
applied after attention, the error term added twice)."""

from __future__ import annotations

import pytest
import torch

import tests.part6b_circuits as checks
from tests.proving import assert_fails, assert_passes


def _losses(mode):
    def impl(model, tc, tokens):
        seen = {}
        loss = lambda hooks: model.run_with_hooks(tokens, return_type="loss", fwd_hooks=hooks).item()
        write = (lambda a, hook: tc.encode(seen["x"]) @ tc.W_dec) if mode == "bare" else (lambda a, hook: tc(seen["x"]))
        c = loss([])
        r = loss([(tc.hook_name, lambda a, hook: seen.__setitem__("x", a)), (tc.hook_name_out, write)])
        where = mode if mode.startswith("blocks.") else tc.hook_name_out
        z = loss([(where, lambda a, hook: torch.zeros_like(a))])
        return {"clean": c, "replaced": r, "zero_ablated": z, "recovered": (z - r) / (z - c)}

    return impl


def test_replacement_without_b_dec_and_skip_is_named():
    err = assert_fails(checks.test_replacement_losses, _losses("bare"), "no_b_dec_no_skip")
    assert "b_dec" in err.hint and "skip" in err.hint and "tc(x)" in err.hint


@pytest.mark.parametrize(("where", "words"), [("blocks.0.hook_attn_out", "attention output")])
def test_zero_ablation_elsewhere_is_named(where, words):
    err = assert_fails(checks.test_replacement_losses, _losses(where), "ablation_elsewhere")
    assert words in err.message and "tc.hook_name_out" in err.hint


def test_logit_effect_decoder_column_shape_error_is_named():
    err = assert_fails(checks.test_latent_logit_effect, lambda model, tc, i: tc.W_dec[:, i] @ model.W_U, "dec_column")
    assert err.hint is not None and "W_dec[:, i] is a column over the latents (d_sae = " in err.hint
    assert "W_dec[i]" in err.hint


def _linearised(mode):
    def impl(model, tc, frozen, embeds, latents=None, error=None):
        ln = lambda v, s: (v - v.mean(-1, keepdim=True)) / s
        if mode == "ln1_at_query":
            v = torch.einsum("kd,hde->hke", embeds - embeds.mean(-1, keepdim=True), model.W_V[0])
            z = torch.einsum("hqk,hke->hqe", frozen.pattern, v) / frozen.ln1_scale[None] + model.b_V[0][:, None]
        else:
            v = torch.einsum("kd,hde->hke", ln(embeds, frozen.ln1_scale), model.W_V[0]) + model.b_V[0][:, None]
            z = torch.einsum("hqk,hke->hqe", frozen.pattern, v)
        mid = embeds + torch.einsum("hqe,hed->qd", z, model.W_O[0]) + model.b_O[0]
        x = ln(mid, frozen.ln2_scale)
        pre = x @ tc.W_enc + tc.b_enc
        f = pre * frozen.active if latents is None else latents
        e = frozen.error if error is None else error
        r2 = mid + f @ tc.W_dec + tc.b_dec + tc.skip(x) + e + (e if mode == "error_twice" else 0)
        return pre, ln(r2, frozen.final_scale) @ model.W_U + model.b_U

    return impl


@pytest.mark.parametrize(("mode", "words"), [("ln1_at_query", "query"), ("error_twice", "counted twice")])
def test_linearised_forward_slips_are_named(mode, words):
    err = assert_fails(checks.test_linearised_forward, _linearised(mode), mode)
    assert words in err.hint


def test_linearised_forward_reference_form_passes():
    assert_passes(checks.test_linearised_forward, _linearised("right"))
