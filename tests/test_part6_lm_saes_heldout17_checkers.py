"""Proofs for part 6's diagnoses added after the fresh32 held-out measurement: the logit effect scaled by a
per-latent factor (one unit fed through ReLU(b_enc[latent] + 1)), and an ablation whose latent activation was
computed by hand with GELU (or SiLU) instead of the SAE's ReLU."""

from __future__ import annotations

import pytest
import torch.nn.functional as F

import tests.part6_lm_saes as checks
from tests.proving import assert_fails


def _one_unit_through_encoder(model, sae, latent):
    return F.relu(sae.b_enc[latent] + 1.0) * sae.W_dec[latent] @ model.W_out[0] @ model.W_U


def test_latent_logit_effect_one_unit_through_the_encoder_is_named():
    err = assert_fails(checks.test_latent_logit_effect, _one_unit_through_encoder, "latent_factor")
    assert "ReLU(b_enc[latent] + 1)" in err.hint


def _by_hand(act):
    def ablate_latent(model, sae, tokens, latent):
        def hook(a, hook):
            f = act((a - sae.b_dec) @ sae.W_enc[:, latent] + sae.b_enc[latent])
            return a - f[..., None] * sae.W_dec[latent]

        return model.run_with_hooks(tokens, fwd_hooks=[(sae.hook_name, hook)])

    return ablate_latent


@pytest.mark.parametrize(("act", "name"), [(F.gelu, "GELU"), (F.silu, "SiLU")])
def test_ablate_latent_by_hand_with_another_activation_is_named(act, name):
    err = assert_fails(checks.test_ablate_latent, _by_hand(act), "ablate_activation")
    assert f"f = {name}(" in err.hint and "ReLU" in err.hint
