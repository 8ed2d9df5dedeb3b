"""Proofs for part 6's checkers: a zero-ablation hook that rebinds its argument and returns nothing, added through
the model.hooks context (not run_with_hooks: every way of adding a hook is watched), named from the learner's
ZeroDivisionError; and a steering vector normalised to unit length, a correct variant (the SAE's documented contract
gives W_dec unit rows). Also latent_frequencies in float16 (a dtype, not a shape), recovered as a mean of
per-sequence ratios, and a logit effect of a decoder row shifted along ones or the mean row."""

from __future__ import annotations

import pytest
import torch

import tests.part6_lm_saes as checks
from tests.proving import assert_fails, assert_passes


@pytest.mark.parametrize("how", ["hooks_context", "run_with_hooks", "add_hook"])
def test_reconstruction_losses_noop_zero_hook(how):
    def reconstruction_losses(model, sae, tokens):
        def loss(hook=None):
            if hook is None:
                return model(tokens, return_type="loss").item()
            if how == "run_with_hooks":
                return model.run_with_hooks(tokens, return_type="loss", fwd_hooks=[(sae.hook_name, hook)]).item()
            if how == "add_hook":
                model.add_hook(sae.hook_name, hook)
                value = model(tokens, return_type="loss").item()
                model.reset_hooks()
                return value
            with model.hooks(fwd_hooks=[(sae.hook_name, hook)]):
                return model(tokens, return_type="loss").item()

        def zero(act, hook):
            act = act * 0  # rebinds the local name, nothing returned

        c, s = loss(), loss(lambda act, hook: sae.decode(sae.encode(act)))
        z = loss(zero)
        return {"clean": c, "spliced": s, "zero_ablated": z, "recovered": (z - s) / (z - c)}

    err = assert_fails(checks.test_reconstruction_losses, reconstruction_losses, "noop_hook")
    assert "returned None" in err.message and "return" in err.hint


def test_reconstruction_losses_hooks_context_correct():
    def reconstruction_losses(model, sae, tokens):
        def loss(hook=None):
            with model.hooks(fwd_hooks=[] if hook is None else [(sae.hook_name, hook)]):
                return model(tokens, return_type="loss").item()

        c, s, z = loss(), loss(lambda a, hook: sae.decode(sae.encode(a))), loss(lambda a, hook: a.mul(0.0))
        return {"clean": c, "spliced": s, "zero_ablated": z, "recovered": 1 - (s - c) / (z - c)}

    assert_passes(checks.test_reconstruction_losses, reconstruction_losses)


def test_steer_with_latent_unit_direction_is_correct():
    """Normalising the row is a correct variant: the markdown documents W_dec's rows as unit rows (the SAE contract),
    so W_dec[latent] / its norm is W_dec[latent] on every allowed SAE."""

    def steer_with_latent(model, sae, tokens, latent, coeff):
        d = sae.W_dec[latent] / sae.W_dec[latent].norm()
        return model.run_with_hooks(tokens, fwd_hooks=[(sae.hook_name, lambda act, hook: act + coeff * d)])

    assert_passes(checks.test_steer_with_latent, steer_with_latent)


def _frequencies(model, sae, tokens, batch_size=32):
    fired = []
    for start in range(0, tokens.shape[0], batch_size):
        _, cache = model.run_with_cache(tokens[start : start + batch_size], names_filter=sae.hook_name)
        fired.append(sae.encode(cache[sae.hook_name])[:, 1:] > 0)
    return torch.cat(fired).float().mean(dim=(0, 1))


def test_latent_frequencies_half_is_a_dtype_problem():
    """float16 rounds the frequencies: named as a dtype, never as code right for one shape of tokens only."""
    err = assert_fails(checks.test_latent_frequencies, lambda *a, **k: _frequencies(*a, **k).half(), "dtype")
    assert "float16" in err.message and "precision" in err.hint


def test_latent_frequencies_float64_is_correct():
    assert_passes(checks.test_latent_frequencies, lambda *a, **k: _frequencies(*a, **k).double())


def test_reconstruction_losses_mean_of_per_sequence_ratios():
    def reconstruction_losses(model, sae, tokens):
        def per_seq(hook=None):
            hooks = [] if hook is None else [(sae.hook_name, hook)]
            return model.run_with_hooks(tokens, return_type="loss", loss_per_token=True, fwd_hooks=hooks).mean(-1)

        c, s = per_seq(), per_seq(lambda a, hook: sae.decode(sae.encode(a)))
        z = per_seq(lambda a, hook: a - a)
        rec = ((z - s) / (z - c)).mean().item()
        return {"clean": c.mean().item(), "spliced": s.mean().item(), "zero_ablated": z.mean().item(), "recovered": rec}

    err = assert_fails(checks.test_reconstruction_losses, reconstruction_losses, "recovered_per_sequence")
    assert "mean of the ratios" in err.hint


@pytest.mark.parametrize("shift", ["centred", "mean_row"])
def test_latent_logit_effect_row_shifted(shift):
    """A decoder row with a multiple of ones (centred over d_mlp) or of the mean row subtracted: the steering check's
    test (steer_shifted), carried through W_out[0] @ W_U."""

    def latent_logit_effect(model, sae, latent):
        d = sae.W_dec[latent]
        d = d - d.mean() if shift == "centred" else d - 0.5 * sae.W_dec.mean(0)
        return model.W_U.T @ (model.W_out[0].T @ d)

    err = assert_fails(checks.test_latent_logit_effect, latent_logit_effect, "row_shifted")
    assert ("all-ones" if shift == "centred" else "mean decoder row") in err.message
