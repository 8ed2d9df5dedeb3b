"""Proofs for part 6 after the fresh47 round: a frequency count kept in uint8 (wrapping above 255 firings) is caught
by a second call on which one latent fires 450 times and named from the wrapped values (`count_wrapped`); a logit
effect through model.W_out without [0] (an extra leading n_layers axis of size 1) is named as the layer axis, with an
unsqueeze listed as the other cause the shape allows (code `shape`, the hint names W_out[0]); the round's correct
variants pass."""

from __future__ import annotations

import torch

import tests.part6_lm_saes as p6
from tests.proving import assert_fails, assert_passes


def freq_uint8_counts(model, sae, tokens, batch_size=32):
    counts = torch.zeros(sae.d_sae, dtype=torch.uint8)
    n = 0
    for start in range(0, tokens.shape[0], batch_size):
        _, cache = model.run_with_cache(tokens[start : start + batch_size], names_filter=sae.hook_name)
        acts = sae.encode(cache[sae.hook_name][:, 1:])
        counts += (acts > 0).sum((0, 1)).to(torch.uint8)
        n += acts.shape[0] * acts.shape[1]
    return counts.float() / n


def freq_int8_counts(model, sae, tokens, batch_size=32):
    counts = torch.zeros(sae.d_sae, dtype=torch.int8)
    n = 0
    for start in range(0, tokens.shape[0], batch_size):
        _, cache = model.run_with_cache(tokens[start : start + batch_size], names_filter=sae.hook_name)
        acts = sae.encode(cache[sae.hook_name][:, 1:])
        counts += (acts > 0).sum((0, 1)).to(torch.int8)
        n += acts.shape[0] * acts.shape[1]
    return counts.float() / n


def freq_correct_bincount(model, sae, tokens, batch_size=32):
    counts = torch.zeros(sae.d_sae, dtype=torch.long)
    n = 0
    for chunk in tokens.split(batch_size):
        _, cache = model.run_with_cache(chunk, names_filter=sae.hook_name)
        acts = sae.encode(cache[sae.hook_name][:, 1:])
        idx = acts.ne(0).nonzero()[:, -1]
        counts += torch.bincount(idx, minlength=sae.d_sae)
        n += acts.shape[0] * acts.shape[1]
    return counts.float() / n


def effect_W_out_all_layers(model, sae, latent):
    return sae.W_dec[latent] @ model.W_out @ model.W_U


def effect_unsqueezed(model, sae, latent):
    return (sae.W_dec[latent] @ model.W_out[0] @ model.W_U).unsqueeze(0)


def effect_correct_decode_difference(model, sae, latent):
    one = torch.zeros(sae.d_sae)
    one[latent] = 1.0
    d = sae.decode(one) - sae.decode(torch.zeros(sae.d_sae))
    return model.W_U.T @ (model.W_out[0].T @ d)


def test_uint8_counts_named():
    err = assert_fails(p6.test_latent_frequencies, freq_uint8_counts, "count_wrapped")
    assert "uint8" in err.hint and "mod 256" in str(err)


def test_int8_counts_named():
    err = assert_fails(p6.test_latent_frequencies, freq_int8_counts, "count_wrapped")
    assert "int8" in err.hint


def test_bincount_frequencies_pass():
    assert_passes(p6.test_latent_frequencies, freq_correct_bincount)


def test_W_out_layer_axis_named():
    err = assert_fails(p6.test_latent_logit_effect, effect_W_out_all_layers, "shape")
    assert "W_out[0]" in err.hint and "n_layers" in str(err)


def test_unsqueezed_effect_lists_unsqueeze():
    err = assert_fails(p6.test_latent_logit_effect, effect_unsqueezed, "shape")
    assert "unsqueeze" in err.hint


def test_decode_difference_effect_passes():
    assert_passes(p6.test_latent_logit_effect, effect_correct_decode_difference)
