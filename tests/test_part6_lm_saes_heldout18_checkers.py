"""Proofs for part 6's diagnoses added after the fresh33 held-out measurement: an ablation that uses position 0's
activation at every position (its logits are the clean ones for a latent off at BOS, which is not a hook that never
ran), the decoder row divided by the whole matrix's norm, every latent's effect summed, top_activations ranked by
|acts|, and position 0 masked with acts.min() (it ties with the smallest real entry when k reaches it)."""

from __future__ import annotations

import tests.part6_lm_saes as checks
from tests.proving import assert_fails


def _first_position_f(model, sae, tokens, latent):
    def hook(a, hook):
        return a - sae.encode(a)[..., latent][:, :1, None] * sae.W_dec[latent]

    return model.run_with_hooks(tokens, fwd_hooks=[(sae.hook_name, hook)])


def test_ablate_latent_position_zero_broadcast_is_named_not_noop():
    err = assert_fails(checks.test_ablate_latent, _first_position_f, "bos_broadcast")
    assert "position 0" in err.hint and "never ran" not in err.hint


def test_latent_logit_effect_whole_matrix_norm_is_named():
    err = assert_fails(
        checks.test_latent_logit_effect,
        lambda model, sae, latent: (sae.W_dec[latent] / sae.W_dec.norm()) @ model.W_out[0] @ model.W_U,
        "whole_matrix_norm",
    )
    assert "WHOLE decoder matrix" in err.hint and "d_head" not in err.hint


def test_latent_logit_effect_every_latent_summed_is_named():
    err = assert_fails(
        checks.test_latent_logit_effect,
        lambda model, sae, latent: (sae.W_dec @ model.W_out[0] @ model.W_U).sum(0),
        "all_latents",
    )
    assert ".sum(0)" in err.hint


def _abs_ranked(acts, k):
    m = acts.abs()
    m[:, 0] = -float("inf")
    _, f = m.flatten().topk(k)
    return acts.flatten()[f], f // acts.shape[1], f % acts.shape[1]


def test_top_activations_abs_ranking_is_named():
    err = assert_fails(checks.test_top_activations, _abs_ranked, "abs_ranked")
    assert "absolute value" in err.hint


def _min_filled(acts, k):
    m = acts.clone()
    m[:, 0] = acts.min()
    v, f = m.flatten().topk(k)
    return v, f // acts.shape[1], f % acts.shape[1]


def test_top_activations_min_fill_is_named():
    err = assert_fails(checks.test_top_activations, _min_filled, "bos_mask_ties")
    assert "acts.min()" in err.hint and "-inf" in err.hint
