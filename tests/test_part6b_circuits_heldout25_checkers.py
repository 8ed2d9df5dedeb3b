"""Proofs for part 6b's diagnoses added after the fresh42 held-out measurement: transcoder_forward on a 2-D and a
4-D x (code hard-coded for [batch seq d_in]), acts rescaled per latent, a bfloat16 computation cast back; the
replaced loss on a subset of the sequences or from a hand-made LayerNorm, a ZeroDivisionError from a zero-ablation
the loss never reads; the de-embedding as a share of the token's total drive; and in linearised_forward an eps added
to the frozen scales, position 0's scale for every position, the final scale recomputed, the latents' gradient path
cut; a single entry over the tolerance is no longer read as a sign region."""

from __future__ import annotations

import einops
import pytest
import torch

import tests.part6b_circuits as checks
from tests.proving import assert_fails, assert_passes
from tests.regions import region_of_disagreement


def _forward(bug: str):
    def transcoder_forward(tc, x):
        if bug == "bf16":
            pre = (x.bfloat16() @ tc.W_enc.bfloat16() + tc.b_enc.bfloat16()).float()
        elif bug == "einsum_bsd":
            pre = einops.einsum(x, tc.W_enc, "b s d, d f -> b s f") + tc.b_enc
        else:
            pre = x @ tc.W_enc + tc.b_enc
        acts = pre * (pre > tc.threshold)
        out = acts @ tc.W_dec + tc.b_dec + (0 if tc.W_skip is None else x @ tc.W_skip.T)
        if bug == "dec_norm":
            acts = acts * tc.W_dec.norm(dim=1)
        if bug == "factor":
            acts = acts * torch.linspace(0.5, 1.5, tc.d_sae)
        return acts, out

    return transcoder_forward


@pytest.mark.parametrize(
    ("bug", "code"),
    [
        ("bf16", "reduced_precision"),
        ("einsum_bsd", "leading_dims"),
        ("dec_norm", "acts_norm_factor"),
        ("factor", "acts_latent_factor"),
    ],
)
def test_forward_slips_are_named(bug, code):
    assert_fails(checks.test_transcoder_forward, _forward(bug), code)


def test_forward_with_ellipsis_einsum_passes():
    def transcoder_forward(tc, x):
        pre = einops.einsum(x, tc.W_enc, "... d, d f -> ... f") + tc.b_enc
        acts = torch.where(pre > tc.threshold, pre, 0.0)
        out = einops.einsum(acts, tc.W_dec, "... f, f d -> ... d") + tc.b_dec
        return acts, out if tc.W_skip is None else out + x @ tc.W_skip.T

    assert_passes(checks.test_transcoder_forward, transcoder_forward)


def _losses(bug: str):
    def replacement_losses(model, tc, tokens):
        seen = {}
        toks = tokens[:1] if bug == "first_seq" else tokens
        loss = lambda t, hooks: model.run_with_hooks(t, return_type="loss", fwd_hooks=hooks).item()
        clean = loss(tokens, [])
        if bug == "manual_ln":
            read_at = "blocks.0.hook_resid_mid"

            def read(a, hook):
                seen["x"] = (a - a.mean(-1, keepdim=True)) / a.std(-1, keepdim=True)
        else:
            read_at = tc.hook_name

            def read(a, hook):
                seen["x"] = a

        replaced = loss(toks, [(read_at, read), (tc.hook_name_out, lambda a, hook: tc(seen["x"]))])

        def zero(a, hook):
            if bug != "zero_last":
                return torch.zeros_like(a)
            a = a.clone()
            a[:, -1] = 0
            return a

        z = loss(toks, [(tc.hook_name_out, zero)])
        return {"clean": clean, "replaced": replaced, "zero_ablated": z, "recovered": (z - replaced) / (z - clean)}

    return replacement_losses


@pytest.mark.parametrize(
    ("bug", "code"),
    [("first_seq", "replaced_subset"), ("manual_ln", "mlp_input_rebuilt"), ("zero_last", "zero_equals_clean")],
)
def test_loss_slips_are_named(bug, code):
    assert_fails(checks.test_replacement_losses, _losses(bug), code)


def test_de_embedding_share_is_named():
    def latent_de_embedding(model, tc, latent):
        drive = model.W_E @ tc.W_enc
        return drive[:, latent] / drive.abs().sum(-1)

    assert_fails(checks.test_latent_de_embedding, latent_de_embedding, "de_share")


def _linearised(bug: str):
    def linearised_forward(model, tc, frozen, embeds, latents=None, error=None):
        def ln(v, s):
            return (v - v.mean(-1, keepdim=True)) / (s + 1e-5 if bug == "eps" else s)

        s1 = frozen.ln1_scale[:1].expand_as(frozen.ln1_scale) if bug == "ln1_pos0" else frozen.ln1_scale
        x1 = ln(embeds, s1)
        v = einops.einsum(x1, model.W_V[0], "k d, h d e -> h k e") + model.b_V[0][:, None]
        z = einops.einsum(frozen.pattern, v, "h q k, h k e -> h q e")
        mid = embeds + einops.einsum(z, model.W_O[0], "h q e, h e d -> q d") + model.b_O[0]
        x = ln(mid, frozen.ln2_scale)
        pre = x @ tc.W_enc + tc.b_enc
        f = ((pre.detach() if bug == "detach" else pre) * frozen.active) if latents is None else latents
        r2 = mid + f @ tc.W_dec + tc.b_dec + tc.skip(x) + (frozen.error if error is None else error)
        if bug == "ln_final":
            return pre, model.ln_final(r2[None])[0] @ model.W_U + model.b_U
        return pre, ln(r2, frozen.final_scale) @ model.W_U + model.b_U

    return linearised_forward


@pytest.mark.parametrize(
    ("bug", "code"),
    [
        ("eps", "eps_on_frozen_scale"),
        ("ln1_pos0", "ln1_scale_pos0"),
        ("ln_final", "final_scale_recomputed"),
        ("detach", "latents_detached"),
    ],
)
def test_linearised_slips_are_named(bug, code):
    assert_fails(checks.test_linearised_forward, _linearised(bug), code)


def test_linearised_reference_style_passes():
    assert_passes(checks.test_linearised_forward, _linearised("none"))


def test_one_entry_is_not_a_sign_region():
    g = torch.Generator().manual_seed(0)
    e = torch.randn(40, 30, generator=g)
    a = e * (1 + 1e-5)
    a[6, 3] = e[6, 3] * 1.01
    found = region_of_disagreement(a, e, ~torch.isclose(a, e, rtol=1e-3, atol=1e-3), 1e-3)
    assert (
        "treats" not in found
        and "only 1 entry is over the tolerance" in found
        and "a small change reaches every entry" in found
    )
