"""Proofs for part 6 after held-out round AW (fresh48): a seq index made by rounding a float division, (i / L).round(),
is named by reading it back (pos_idx right, seq_idx the rounded division) instead of the generic unravel guess; a
negative coeff steered with its sign dropped (abs(coeff)) is named as the sign, since the first call (coeff > 0)
was right, instead of 'a subtraction where the solution adds'. The correct variants the round found still pass."""

from __future__ import annotations

import torch

import tests.part6_lm_saes as p6
from tests.proving import assert_fails, assert_passes


def top_round_div(acts, k):
    m = acts.clone()
    m[:, 0] = float("-inf")
    v, flat = m.flatten().topk(k)
    L = acts.shape[1]
    return v, (flat / L).round().long(), flat % L


def top_correct_overfetch(acts, k):
    L = acts.shape[1]
    v, flat = acts.flatten().topk(min(k + acts.shape[0], acts.numel()))
    keep = flat % L != 0
    v, flat = v[keep][:k], flat[keep][:k]
    return v, flat // L, flat % L


def steer_abs_coeff(model, sae, tokens, latent, coeff):
    return model.run_with_hooks(tokens, fwd_hooks=[(sae.hook_name, lambda a, hook: a + abs(coeff) * sae.W_dec[latent])])


def steer_correct_inplace(model, sae, tokens, latent, coeff):
    def h(a, hook):
        a += coeff * sae.W_dec[latent]

    return model.run_with_hooks(tokens, fwd_hooks=[(sae.hook_name, h)])


def effect_correct_layer_sum(model, sae, latent):
    return torch.einsum("m,lmd,dv->v", sae.W_dec[latent], model.W_out, model.W_U)


def test_rounded_division_named():
    err = assert_fails(p6.test_top_activations, top_round_div, "rounded_division")
    assert ".round()" in str(err) and "i // " in err.hint


def test_abs_coeff_named_as_sign():
    err = assert_fails(p6.test_steer_with_latent, steer_abs_coeff, "coeff_sign")
    assert "abs()" in err.hint and "subtraction" not in err.hint


def test_correct_variants_pass():
    assert_passes(p6.test_top_activations, top_correct_overfetch)
    assert_passes(p6.test_steer_with_latent, steer_correct_inplace)
    assert_passes(p6.test_latent_logit_effect, effect_correct_layer_sum)


def freq_bf16_counts(model, sae, tokens, batch_size=32):
    counts = torch.zeros(sae.d_sae, dtype=torch.bfloat16)
    n = 0
    for start in range(0, tokens.shape[0], batch_size):
        _, cache = model.run_with_cache(tokens[start : start + batch_size], names_filter=sae.hook_name)
        acts = sae.encode(cache[sae.hook_name][:, 1:])
        counts += (acts > 0).to(torch.bfloat16).sum((0, 1))
        n += acts.shape[0] * acts.shape[1]
    return counts.float() / n


def freq_correct_weighted_means(model, sae, tokens, batch_size=32):
    total = torch.zeros(sae.d_sae, dtype=torch.float64)
    for b in tokens.split(batch_size):
        h = model.run_with_cache(b, names_filter=sae.hook_name)[1][sae.hook_name]
        total += sae.encode(h)[:, 1:].gt(0).double().mean((0, 1)) * b.shape[0]
    return (total / tokens.shape[0]).float()


def test_bfloat16_counts_named():
    err = assert_fails(p6.test_latent_frequencies, freq_bf16_counts, "count_precision")
    assert "bfloat16" in err.hint


def test_correct_frequencies_pass():
    assert_passes(p6.test_latent_frequencies, freq_correct_weighted_means)


def steer_div_seq_len(model, sae, tokens, latent, coeff):
    return model.run_with_hooks(
        tokens, fwd_hooks=[(sae.hook_name, lambda a, hook: a + coeff / a.shape[1] * sae.W_dec[latent])]
    )


def test_coeff_over_seq_len_named():
    err = assert_fails(p6.test_steer_with_latent, steer_div_seq_len, "steer_scaled")
    assert "1/seq_len" in str(err)
