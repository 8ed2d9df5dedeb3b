"""Proofs for part 6's checkers: a zero-ablation hook that rebinds its argument and returns nothing, added through
the model.hooks context (not run_with_hooks: every way of adding a hook is watched), named from the learner's
ZeroDivisionError; and a steering vector normalised to unit length, a correct variant (the SAE's documented contract
gives W_dec unit rows)."""

from __future__ import annotations

import pytest

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
