"""Proofs for part 6's diagnoses added after the fresh37 held-out measurement: top_activations whose values hold the
-inf used to mask position 0 (the BOS entries came back), named by a probe with fewer sequences than k: a ranking by
|acts| after the mask (abs turns -inf into +inf) or an ascending ranking."""

from __future__ import annotations

import tests.part6_lm_saes as checks
from tests.proving import assert_fails


def _masked_then(acts, k, order):
    m = acts.clone()
    m[:, 0] = -float("inf")
    flat = m.flatten()
    idx = flat.abs().topk(k).indices if order == "abs" else flat.topk(k, largest=False).indices
    return flat[idx], idx // acts.shape[1], idx % acts.shape[1]


def test_top_activations_abs_after_inf_mask_is_named():
    err = assert_fails(checks.test_top_activations, lambda a, k: _masked_then(a, k, "abs"), "abs_ranked")
    assert "position 0" in err.message and "+inf" in err.hint


def test_top_activations_ascending_after_inf_mask_is_named():
    err = assert_fails(checks.test_top_activations, lambda a, k: _masked_then(a, k, "asc"), "smallest")
    assert "LARGEST" in err.hint


def test_steer_scalar_added_is_named():
    """Round AM: the hook adds coeff itself to every entry (W_dec[latent] left out)."""

    def steer_with_latent(model, sae, tokens, latent, coeff):
        return model.run_with_hooks(tokens, fwd_hooks=[(sae.hook_name, lambda act, hook: act + coeff)])

    err = assert_fails(checks.test_steer_with_latent, steer_with_latent, "steer_scalar")
    assert "every entry" in err.message and "direction" in err.hint


def test_ablate_whole_decoder_size_is_named():
    """Round AM: [latent] left off W_dec, so f · W_dec meets d_sae in a broadcast error; the size is named."""

    def ablate_latent(model, sae, tokens, latent):
        def hook(act, hook):
            f_all = sae.encode(act)
            return act - f_all[..., latent, None, None] * sae.W_dec

        return model.run_with_hooks(tokens, fwd_hooks=[(sae.hook_name, hook)])

    err = assert_fails(checks.test_ablate_latent, ablate_latent, "exception")
    assert "W_dec[latent]" in err.hint and "d_sae" in err.hint
