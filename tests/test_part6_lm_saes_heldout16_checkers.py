"""Proofs for part 6's checkers: frequencies of the reconstruction encoded again; a logit effect through the encoder
column averaged with the decoder row, or divided by the d_model vector's std (ln_final imitated); an ablation of
each position's strongest latent, and one removing a fraction of the latent's contribution (the fraction named)."""

from __future__ import annotations

import pytest
import torch

import tests.part6_lm_saes as checks
from tests.proving import assert_fails


def _reencoded(model, sae, tokens, batch_size=32):
    counts, n = torch.zeros(sae.d_sae), 0
    for s in range(0, tokens.shape[0], batch_size):
        _, cache = model.run_with_cache(tokens[s : s + batch_size], names_filter=sae.hook_name)
        acts = sae.encode(sae.decode(sae.encode(cache[sae.hook_name][:, 1:])))
        counts += (acts > 0).float().sum((0, 1))
        n += acts.shape[0] * acts.shape[1]
    return counts / n


def test_latent_frequencies_of_the_reconstruction_reencoded():
    err = assert_fails(checks.test_latent_frequencies, _reencoded, "reencoded")
    assert "sae.encode(sae.decode(sae.encode(act)))" in err.hint


def _mixed(model, sae, latent):
    return (sae.W_dec[latent] + sae.W_enc[:, latent]) / 2 @ model.W_out[0] @ model.W_U


def _std_scaled(model, sae, latent):
    e = sae.W_dec[latent] @ model.W_out[0]
    return e / e.std() @ model.W_U


def test_latent_logit_effect_encoder_column_averaged_in():
    err = assert_fails(checks.test_latent_logit_effect, _mixed, "direction_mixed")
    assert "averaged" in err.hint


def test_latent_logit_effect_divided_by_the_d_model_vectors_std():
    err = assert_fails(checks.test_latent_logit_effect, _std_scaled, "spread_scaled")
    assert "d_model vector" in err.hint and "std" in err.hint


def _ablate(kind, c=0.5):
    def ablate_latent(model, sae, tokens, latent):
        def hook(act, hook):
            f = sae.encode(act)
            if kind == "top":
                top = f.argmax(-1)
                return act - f.gather(-1, top[..., None]) * sae.W_dec[top]
            return act - c * f[..., latent, None] * sae.W_dec[latent]

        return model.run_with_hooks(tokens, fwd_hooks=[(sae.hook_name, hook)])

    return ablate_latent


def test_ablate_latent_strongest_latent_instead():
    err = assert_fails(checks.test_ablate_latent, _ablate("top"), "strongest_latent")
    assert "argmax" in err.hint


@pytest.mark.parametrize("c", [0.5, 0.3])
def test_ablate_latent_fraction_of_the_contribution_named(c):
    err = assert_fails(checks.test_ablate_latent, _ablate("frac", c), "ablate_fraction")
    assert f"{c:.4g} × the latent's contribution" in err.message
