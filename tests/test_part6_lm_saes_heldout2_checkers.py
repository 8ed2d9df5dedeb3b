"""Proofs for the part 6 checkers from the fresh7 held-out trial (the main proofs are in
test_part6_lm_saes_checkers.py and ..._heldout_checkers.py)."""

from __future__ import annotations

import torch

import tests.part6_lm_saes as checks
from tests.proving import assert_fails


def _losses_last_dropped(model, sae, tokens):
    """The model fed tokens[:, :-1] (the last token dropped as 'not predicted')."""
    tokens = tokens[:, :-1]
    loss = lambda hooks: float(model.run_with_hooks(tokens, return_type="loss", fwd_hooks=hooks))
    clean = loss([])
    spliced = loss([(sae.hook_name, lambda act, hook: sae.decode(sae.encode(act)))])
    zero = loss([(sae.hook_name, lambda act, hook: torch.zeros_like(act))])
    return {"clean": clean, "spliced": spliced, "zero_ablated": zero, "recovered": (zero - spliced) / (zero - clean)}


def test_reconstruction_losses_last_token_dropped():
    assert_fails(checks.test_reconstruction_losses, _losses_last_dropped, "last_token_dropped")


def _steer_unregistered(model, sae, tokens, latent, coeff):
    """A hook written but never passed to run_with_hooks: the message must not only blame the return value."""
    return model.run_with_hooks(tokens)


def test_steer_unregistered_hook_lists_both_causes():
    failure = assert_fails(checks.test_steer_with_latent, _steer_unregistered, "noop")
    assert "never ran" in str(failure) and "return" in str(failure)
