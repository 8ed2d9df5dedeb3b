"""Proofs for part 6's checkers: latent_frequencies with an integer division of the counts (as floats or as an
integer tensor), as a percentage, and with batches cut along the positions (dim 1); and a steering vector divided by
the decoder row's squared norm, a correct variant (the markdown documents W_dec's rows as unit rows)."""

from __future__ import annotations

import pytest
import torch

import tests.part6_lm_saes as checks
from tests.proving import assert_fails, assert_passes


def _frequencies(bug):
    def latent_frequencies(model, sae, tokens, batch_size=32):
        counts = torch.zeros(sae.d_sae, dtype=torch.long)
        n = 0
        for chunk in tokens.split(batch_size, dim=1 if bug == "dim1" else 0):
            _, cache = model.run_with_cache(chunk, names_filter=sae.hook_name)
            acts = sae.encode(cache[sae.hook_name][:, 1:])
            counts += acts.gt(0).sum((0, 1))
            n += acts.shape[0] * acts.shape[1]
        if bug in ("intdiv", "intdiv_long"):
            return counts // n if bug == "intdiv_long" else (counts // n).float()
        return counts.float() / n * (100 if bug == "percent" else 1)

    return latent_frequencies


@pytest.mark.parametrize("bug", ["intdiv", "intdiv_long"])
def test_latent_frequencies_integer_division(bug):
    err = assert_fails(checks.test_latent_frequencies, _frequencies(bug), "int_division")
    assert "`//`" in err.hint and "divide as floats" in err.hint


def test_latent_frequencies_percentage():
    err = assert_fails(checks.test_latent_frequencies, _frequencies("percent"), "percent")
    assert "a percentage" in err.hint and "a fraction in [0, 1]" in err.hint


def test_latent_frequencies_batches_along_positions():
    err = assert_fails(checks.test_latent_frequencies, _frequencies("dim1"), "position_batches")
    assert "dim=1" in err.hint and "dim 0" in err.hint


def test_latent_frequencies_long_counts_correct():
    assert_passes(checks.test_latent_frequencies, _frequencies(None))


def _steer(power, fixed_latent=None):
    def steer_with_latent(model, sae, tokens, latent, coeff):
        d = sae.W_dec[latent if fixed_latent is None else fixed_latent]
        vec = coeff * d / d.norm() ** power

        def hook(act, hook):
            act += vec

        return model.run_with_hooks(tokens, fwd_hooks=[(sae.hook_name, hook)])

    return steer_with_latent


@pytest.mark.parametrize("power", [1, 2])
def test_steer_with_latent_divided_by_row_norm_is_correct(power):
    """W_dec's rows are documented as unit rows: / ‖row‖² (the projection formula's habit) is the same steering on
    every allowed SAE; the shipped rows are unit only to float32 rounding, which must not fail it."""
    assert_passes(checks.test_steer_with_latent, _steer(power))


def test_steer_with_latent_divided_by_row_norm_still_checks_the_second_call():
    assert_fails(checks.test_steer_with_latent, _steer(2, fixed_latent=7), "stale_call")
