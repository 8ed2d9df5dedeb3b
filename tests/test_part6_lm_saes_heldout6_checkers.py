"""Proofs for the part 6 checkers from the fresh14 held-out trial, unnamed cases (the others are in
test_part6_lm_saes_checkers.py and ..._heldout*_checkers.py)."""

from __future__ import annotations

import torch

import tests.part6_lm_saes as checks
from tests.proving import assert_fails


def _frequencies(hook_name=None, bos_numerator=False):
    def latent_frequencies(model, sae, tokens, batch_size=32):
        hook = hook_name or sae.hook_name
        fired, n = torch.zeros(sae.W_enc.shape[1], device=sae.W_enc.device), 0
        for batch in torch.split(tokens, batch_size):
            _, cache = model.run_with_cache(batch, names_filter=hook)
            acts = sae.encode(cache[hook])
            fired += (acts if bos_numerator else acts[:, 1:]).gt(0).float().sum((0, 1))
            n += batch.shape[0] * (batch.shape[1] - 1)
        return fired / n

    return latent_frequencies


def test_latent_frequencies_bos_numerator_fresh14():
    assert_fails(checks.test_latent_frequencies, _frequencies(bos_numerator=True), "bos_numerator")


def test_latent_frequencies_mlp_out_hook_fresh14():
    err = assert_fails(checks.test_latent_frequencies, _frequencies("blocks.0.hook_mlp_out"), "hook_point")
    assert "sae.hook_name" in err.hint


def test_latent_logit_effect_centred_fresh14():
    def latent_logit_effect(model, sae, latent):
        return (sae.W_dec[latent] - sae.W_dec.mean(0)) @ model.W_out[0] @ model.W_U

    assert_fails(checks.test_latent_logit_effect, latent_logit_effect, "centred_latents")


def test_latent_logit_effect_matmul_order_fresh14():
    def latent_logit_effect(model, sae, latent):
        return (model.W_out[0] @ sae.W_dec[latent]) @ model.W_U

    err = assert_fails(checks.test_latent_logit_effect, latent_logit_effect, "exception")
    assert "wrong order" in err.hint and "d_mlp" in err.hint


def _steer(hook_name=None, coeff_on_act=False, difference=False):
    def steer_with_latent(model, sae, tokens, latent, coeff):
        d = sae.W_dec[latent]
        hook = lambda act, hook: act * coeff + d if coeff_on_act else act + coeff * d
        out = model.run_with_hooks(tokens, fwd_hooks=[(hook_name or sae.hook_name, hook)])
        return out - model(tokens) if difference else out

    return steer_with_latent


def test_steer_with_latent_coeff_on_act_fresh14():
    assert_fails(checks.test_steer_with_latent, _steer(coeff_on_act=True), "coeff_on_act")


def test_steer_with_latent_mlp_out_fresh14():
    assert_fails(checks.test_steer_with_latent, _steer("blocks.0.hook_mlp_out"), "hook_point")


def test_steer_with_latent_difference_fresh14():
    assert_fails(checks.test_steer_with_latent, _steer(difference=True), "difference")


def test_ablate_latent_difference_fresh14():
    def ablate_latent(model, sae, tokens, latent):
        hook = lambda act, hook: act - sae.encode(act)[..., latent, None] * sae.W_dec[latent]
        return model.run_with_hooks(tokens, fwd_hooks=[(sae.hook_name, hook)]) - model(tokens)

    assert_fails(checks.test_ablate_latent, ablate_latent, "difference")
