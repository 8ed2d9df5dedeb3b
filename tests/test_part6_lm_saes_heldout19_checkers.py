"""Proofs for part 6's diagnoses added after the fresh35 held-out measurement: recovered with a loss alone in the
ratio (zero - clean written as zero) quoted as the formula it is, and a steering vector with an extra scale read
back (k / coeff compared with named norms; a coeff that does not follow the call, or an unnamed factor, reported
with its possible causes, none asserted). The correct steering (in place) still passes. fresh36: frequencies of
some whole batches alone (the last one: a count reset in the loop) named from the per-sequence weights read back."""

from __future__ import annotations

import pytest
import torch

import tests.part6_lm_saes as checks
from tests.proving import assert_fails, assert_passes


def _losses(recovered):
    def reconstruction_losses(model, sae, tokens):
        L = lambda hooks: model.run_with_hooks(tokens, return_type="loss", fwd_hooks=hooks).item()
        c = L([])
        s = L([(sae.hook_name, lambda a, hook: sae.decode(sae.encode(a)))])
        z = L([(sae.hook_name, lambda a, hook: torch.zeros_like(a))])
        return {"clean": c, "spliced": s, "zero_ablated": z, "recovered": recovered(c, s, z)}

    return reconstruction_losses


@pytest.mark.parametrize(
    ("formula", "quoted", "alone"),
    [
        (lambda c, s, z: 1 - (s - c) / z, "1 - (spliced - clean) / zero", "zero - clean without its - clean"),
        (lambda c, s, z: (s - c) / z, "(spliced - clean) / zero", "the denominator is zero alone"),
        (lambda c, s, z: 1 - s / (z - c), "1 - spliced / (zero - clean)", "the numerator is spliced alone"),
    ],
)
def test_recovered_with_a_loss_alone_is_quoted(formula, quoted, alone):
    err = assert_fails(checks.test_reconstruction_losses, _losses(formula), "recovered_formula")
    assert quoted in err.hint and alone in err.hint


def _steer(vector):
    def steer_with_latent(model, sae, tokens, latent, coeff):
        hook = lambda act, hook: act + vector(sae, latent, coeff)
        return model.run_with_hooks(tokens, fwd_hooks=[(sae.hook_name, hook)])

    return steer_with_latent


def test_steer_divided_by_encoder_norm_is_named():
    err = assert_fails(
        checks.test_steer_with_latent,
        _steer(lambda s, i, c: c * s.W_dec[i] / s.W_enc[:, i].norm()),
        "steer_scaled",
    )
    assert "1/‖W_enc[:, latent]‖" in err.message and "stale" not in err.hint


def test_steer_times_sqrt_d_model_is_named():
    err = assert_fails(
        checks.test_steer_with_latent, _steer(lambda s, i, c: c * s.W_dec[i] * s.W_dec.shape[1] ** 0.5), "steer_scaled"
    )
    assert "√d_model" in err.message


def test_steer_unnamed_factor_lists_causes():
    err = assert_fails(checks.test_steer_with_latent, _steer(lambda s, i, c: 1.37 * c * s.W_dec[i]), "steer_coeff")
    assert "1.37" in err.message and "follow" not in err.message
    assert "possible causes" in err.hint and "extra scale" in err.hint and "other than this call's" in err.hint


def test_steer_fixed_coeff_is_said_not_to_follow():
    err = assert_fails(checks.test_steer_with_latent, _steer(lambda s, i, c: 4.0 * s.W_dec[i]), "steer_coeff")
    assert "does not follow this call's coeff" in err.message


def test_steer_in_place_correct_passes():
    def steer_with_latent(model, sae, tokens, latent, coeff):
        def hook(act, hook):
            act += coeff * sae.W_dec[latent]
            return act

        return model.run_with_hooks(tokens, fwd_hooks=[(sae.hook_name, hook)])

    assert_passes(checks.test_steer_with_latent, steer_with_latent)


def _frequencies(keep):
    """Per-batch counts kept by `keep(batch_index, n_batches)`: reset in the loop (last batch only) and the like."""

    def latent_frequencies(model, sae, tokens, batch_size=32):
        starts = list(range(0, tokens.shape[0], batch_size))
        count, n = 0, 0
        for i, s in enumerate(starts):
            _, cache = model.run_with_cache(tokens[s : s + batch_size], names_filter=sae.hook_name)
            fired = (sae.encode(cache[sae.hook_name])[:, 1:] > 0).float()
            if keep(i, len(starts)):
                count, n = count + fired.sum((0, 1)), n + fired.shape[0] * fired.shape[1]
        return count / n

    return latent_frequencies


@pytest.mark.parametrize(
    ("keep", "code", "named"),
    [
        (lambda i, k: i == k - 1, "last_batch_only", "the last batch alone"),
        (lambda i, k: i == 1, "sequences_subset", "batch 2 of 3 alone"),
    ],
)
def test_latent_frequencies_of_some_batches_alone_are_named(keep, code, named):
    err = assert_fails(checks.test_latent_frequencies, _frequencies(keep), code)
    assert named in err.message and "exactly those sequences' own frequencies" in err.message


def test_latent_frequencies_every_batch_still_passes():
    assert_passes(checks.test_latent_frequencies, _frequencies(lambda i, k: True))
