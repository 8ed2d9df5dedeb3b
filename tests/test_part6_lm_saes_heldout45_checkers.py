"""Proofs for part 6 after the fresh45 round: a frequency that counts, per position, whether the latent fires in any
sequence of the batch (`batch_axis_any`), a splice into the first sequence only (`spliced_rows`), a logit effect
with b_out added to every row of W_out or b_dec subtracted from the row (`bias_terms`, coefficients read off), and
position 0 negated rather than masked (named as -acts[:, 0], not -acts.max()); the round's correct variants pass."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import tests.part6_lm_saes as p6
from tests.proving import assert_fails, assert_passes


def _loss(model, tokens, hooks):
    return model.run_with_hooks(tokens, return_type="loss", fwd_hooks=hooks).item()


def freq_any_in_batch_per_position(model, sae, tokens, batch_size=32):
    counts = torch.zeros(sae.d_sae, device=sae.W_enc.device)
    n = 0
    for start in range(0, tokens.shape[0], batch_size):
        _, cache = model.run_with_cache(tokens[start : start + batch_size], names_filter=sae.hook_name)
        acts = sae.encode(cache[sae.hook_name][:, 1:])
        counts += (acts > 0).float().amax(dim=0).sum(0)
        n += acts.shape[1]
    return counts / n


def freq_preact_correct(model, sae, tokens, batch_size=32):
    fired, n = None, 0
    for batch in tokens.split(batch_size):
        _, cache = model.run_with_cache(batch, names_filter=sae.hook_name)
        x = cache[sae.hook_name][:, 1:]
        c = (((x - sae.b_dec) @ sae.W_enc + sae.b_enc) > 0).long().sum((0, 1))
        fired = c if fired is None else fired + c
        n += x.shape[0] * x.shape[1]
    return fired.double().div(n).float()


def test_frequency_any_over_batch_axis_named():
    hint = assert_fails(p6.test_latent_frequencies, freq_any_in_batch_per_position, "batch_axis_any").hint
    assert "ANY sequence of the batch" in hint
    assert_passes(p6.test_latent_frequencies, freq_preact_correct)


def losses_splice_first_row(model, sae, tokens):
    def splice(a, hook):
        a[0] = sae.decode(sae.encode(a))[0]
        return a

    c = _loss(model, tokens, [])
    s = _loss(model, tokens, [(sae.hook_name, splice)])
    z = _loss(model, tokens, [(sae.hook_name, lambda a, hook: torch.zeros_like(a))])
    return {"clean": c, "spliced": s, "zero_ablated": z, "recovered": (z - s) / (z - c)}


def losses_correct_per_token(model, sae, tokens):
    def L(h):
        return model.run_with_hooks(tokens, return_type="loss", loss_per_token=True, fwd_hooks=h).double().mean().item()

    c = L([])
    s = L([(sae.hook_name, lambda a, hook: sae(a))])
    z = L([(sae.hook_name, lambda a, hook: a * 0.0)])
    return {"clean": c, "spliced": s, "zero_ablated": z, "recovered": 1 - (s - c) / (z - c)}


def test_splice_into_first_sequence_named():
    hint = assert_fails(p6.test_reconstruction_losses, losses_splice_first_row, "spliced_rows").hint
    assert "only sequence 0" in hint
    assert_passes(p6.test_reconstruction_losses, losses_correct_per_token)


def top_negate_bos(acts, k):
    m = acts.clone()
    m[:, 0] = -m[:, 0]
    v, flat = m.flatten().topk(k)
    return v, flat // acts.shape[1], flat % acts.shape[1]


def top_correct_slice(acts, k):
    body = acts[:, 1:]
    v, flat = body.reshape(-1).topk(k)
    L = body.shape[1]
    return v, torch.div(flat, L, rounding_mode="floor"), flat % L + 1


def test_negated_bos_named_as_negated():
    err = assert_fails(p6.test_top_activations, top_negate_bos, "bos_mask_not_lowest")
    assert "-acts[:, 0]" in err.hint and "acts.max()" not in err.hint
    assert_passes(p6.test_top_activations, top_correct_slice)


def effect_b_out_broadcast(model, sae, latent):
    return sae.W_dec[latent] @ (model.W_out[0] + model.b_out[0]) @ model.W_U


def effect_minus_b_dec_path(model, sae, latent):
    return (sae.W_dec[latent] - sae.b_dec) @ model.W_out[0] @ model.W_U


def effect_gelu_row(model, sae, latent):
    return F.gelu(sae.W_dec[latent]) @ model.W_out[0] @ model.W_U


def effect_correct_einsum(model, sae, latent):
    return torch.einsum("m,md,dv->v", sae.W_dec[latent], model.blocks[0].mlp.W_out, model.unembed.W_U)


def test_logit_effect_bias_terms_named():
    b_out = assert_fails(p6.test_latent_logit_effect, effect_b_out_broadcast, "bias_terms")
    assert "W_out[0] + b_out" in b_out.message and "sum(W_dec[latent])" in b_out.message
    b_dec = assert_fails(p6.test_latent_logit_effect, effect_minus_b_dec_path, "bias_terms")
    assert "W_dec[latent] − b_dec" in b_dec.message
    assert_fails(p6.test_latent_logit_effect, effect_gelu_row, "gelu")
    assert_passes(p6.test_latent_logit_effect, effect_correct_einsum)
