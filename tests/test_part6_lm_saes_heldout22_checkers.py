"""Proofs for part 6 after the fresh41 measurement: latent_frequencies run on the pieces of tokens.chunk(batch_size)
passes (right values; all at once is a correct variant already); the encoder without b_dec (`no_b_dec`); the
zero-ablated loss with the SAE's error kept (`zero_error_only`) or the zeros at another hook point
(`zero_hook_point`); top_activations with the last position masked too (`first_last_masked`); an ablation passed
through the SAE again (`ablate_reencoded`), with f shifted one position (`f_shifted`), and the fallback for an
ablation wrong only where the latent fires, which says what it observed."""

from __future__ import annotations

import torch

import tests.part6_lm_saes as p6
from tests.proving import assert_fails, assert_passes


def _frequencies(split):
    def latent_frequencies(model, sae, tokens, batch_size=32):
        counts, n = torch.zeros(sae.d_sae), 0
        for b in split(tokens, batch_size):
            _, cache = model.run_with_cache(b, names_filter=sae.hook_name)
            a = sae.encode(cache[sae.hook_name][:, 1:])
            counts += (a > 0).float().sum((0, 1))
            n += a.shape[0] * a.shape[1]
        return counts / n

    return latent_frequencies


def test_frequencies_batches_are_not_checked():
    # all at once is a correct variant (test_latent_frequencies_correct: freq_all_at_once), so the pieces
    # tokens.chunk(batch_size) gives (3, 3, 3, 1 sequences for 10 and batch_size 4: right values) are one too
    assert_passes(p6.test_latent_frequencies, _frequencies(lambda t, b: t.chunk(b)))


def test_frequencies_encoder_without_b_dec():
    def latent_frequencies(model, sae, tokens, batch_size=32):
        counts, n = torch.zeros(sae.d_sae), 0
        for b in tokens.split(batch_size):
            _, cache = model.run_with_cache(b, names_filter=sae.hook_name)
            a = torch.relu(cache[sae.hook_name][:, 1:] @ sae.W_enc + sae.b_enc)
            counts += (a > 0).float().sum((0, 1))
            n += a.shape[0] * a.shape[1]
        return counts / n

    assert_fails(p6.test_latent_frequencies, latent_frequencies, "no_b_dec")


def _losses(zero_hook, where=None):
    def reconstruction_losses(model, sae, tokens):
        def loss(fn=None, name=sae.hook_name):
            return model.run_with_hooks(tokens, return_type="loss", fwd_hooks=[(name, fn)] if fn else []).item()

        clean, spliced = loss(), loss(lambda a, hook: sae.decode(sae.encode(a)))
        zero = loss(lambda a, hook: zero_hook(sae, a), name=where(sae) if where else sae.hook_name)
        return dict(clean=clean, spliced=spliced, zero_ablated=zero, recovered=(zero - spliced) / (zero - clean))

    return reconstruction_losses


def test_zero_ablation_elsewhere():
    error_only = _losses(lambda sae, a: a - sae.decode(sae.encode(a)))
    assert_fails(p6.test_reconstruction_losses, error_only, "zero_error_only")
    mid = lambda sae: sae.hook_name.replace("mlp.hook_post", "hook_resid_mid")
    failure = assert_fails(p6.test_reconstruction_losses, _losses(lambda sae, a: a * 0, mid), "zero_hook_point")
    assert "hook_resid_mid" in failure.hint
    pre = lambda sae: sae.hook_name.replace("hook_post", "hook_pre")
    assert_passes(p6.test_reconstruction_losses, _losses(lambda sae, a: a * 0, pre))  # GELU(0) = 0: the same run
    post = lambda sae: sae.hook_name.replace("mlp.hook_post", "hook_resid_pre")
    assert_fails(p6.test_reconstruction_losses, _losses(lambda sae, a: a * 0, post), "zero_hook_point")


def test_last_position_masked_too():
    def top_activations(acts, k):
        m = acts.clone()
        m[:, [0, -1]] = -torch.inf
        val, i = m.flatten().topk(k)
        return val, i // acts.shape[1], i % acts.shape[1]

    assert_fails(p6.test_top_activations, top_activations, "first_last_masked")


def _ablate(edit):
    def ablate_latent(model, sae, tokens, latent):
        d = sae.W_dec[latent]
        hook = lambda act, hook: edit(sae, act, sae.encode(act), latent, d)
        return model.run_with_hooks(tokens, fwd_hooks=[(sae.hook_name, hook)])

    return ablate_latent


def test_ablation_through_the_sae_again():
    def reencoded(sae, act, fe, latent, d):
        err = act - sae.decode(fe)
        return sae.decode(sae.encode(act - fe[..., latent, None] * d)) + err

    assert_fails(p6.test_ablate_latent, _ablate(reencoded), "ablate_reencoded")
    trip = lambda sae, act, fe, latent, d: sae.decode(sae.encode(act - fe[..., latent, None] * d))
    assert_fails(p6.test_ablate_latent, _ablate(trip), "ablate_reencoded")


def test_ablation_with_f_shifted():
    rolled = lambda sae, act, fe, latent, d: act - torch.roll(fe[..., latent], -1, dims=1)[..., None] * d
    failure = assert_fails(p6.test_ablate_latent, _ablate(rolled), "f_shifted")
    assert "t+1" in failure.message

    def shifted(sae, act, fe, latent, d):
        g = torch.zeros_like(fe[..., latent])
        g[:, 1:] = fe[:, :-1, latent]
        return act - g[..., None] * d

    assert "t-1" in assert_fails(p6.test_ablate_latent, _ablate(shifted), "f_shifted").message


def test_where_fires_fallback_says_what_it_saw():
    other = lambda sae, act, fe, latent, d: act - fe[..., latent, None] * (d - 0.3 * sae.W_dec[latent + 1])
    failure = assert_fails(p6.test_ablate_latent, _ablate(other), "fires_positions")
    assert "mean norm" in failure.message and "along W_dec[latent]" in failure.message
    assert "e.g." in failure.hint
