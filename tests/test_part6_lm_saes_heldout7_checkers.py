"""Proofs for the part 6 checkers from the fresh15 held-out trial, unnamed cases (the others are in
test_part6_lm_saes_checkers.py and ..._heldout*_checkers.py)."""

from __future__ import annotations

import torch

import tests.part6_lm_saes as checks
from tests.proving import assert_fails


def _frequencies(bug):
    def latent_frequencies(model, sae, tokens, batch_size=32):
        fired, freq, n = torch.zeros(sae.W_enc.shape[1], device=sae.W_enc.device), None, 0
        for batch in torch.split(tokens, batch_size):
            _, cache = model.run_with_cache(batch, names_filter=sae.hook_name)
            on = (sae.encode(cache[sae.hook_name]) > 0)[:, 1:].float()
            fired += on.sum((0, 1))
            n += batch.shape[0] * batch.shape[1] - 1 if bug == "per_batch" else on.shape[0] * on.shape[1]
            freq = on.mean((0, 1)) if freq is None else (freq + on.mean((0, 1))) / 2
        if bug == "halving":
            return freq
        if bug == "precedence":
            return fired / (tokens.shape[0] * tokens.shape[1] - 1)
        return fired / n

    return latent_frequencies


def test_latent_frequencies_precedence_fresh15():
    err = assert_fails(checks.test_latent_frequencies, _frequencies("precedence"), "divisor")
    assert "once per sequence" in err.hint and "n_seq * seq - 1" in err.hint


def test_latent_frequencies_precedence_per_batch_fresh15():
    err = assert_fails(checks.test_latent_frequencies, _frequencies("per_batch"), "divisor")
    assert "once per batch" in err.hint


def test_latent_frequencies_halving_average_fresh15():
    assert_fails(checks.test_latent_frequencies, _frequencies("halving"), "halving_average")


def _losses(bug):
    def reconstruction_losses(model, sae, tokens):
        L = lambda hooks: model.run_with_hooks(tokens, return_type="loss", fwd_hooks=list(hooks)).item()
        splice = lambda act, hook: sae.decode(sae.encode(act))
        clean = L([])
        hooks = [(sae.hook_name, lambda act, hook: torch.zeros_like(act))]
        z = L(hooks)
        if bug == "reused":
            hooks.append((sae.hook_name, splice))
            s = L(hooks)
        else:
            s = L([(sae.hook_name, splice)])
        rec = 1 - (s - clean) / (z - s) if bug == "formula" else (z - s) / (z - clean)
        return {"clean": clean, "spliced": s, "zero_ablated": z, "recovered": rec}

    return reconstruction_losses


def test_reconstruction_losses_hooks_reused_fresh15():
    assert_fails(checks.test_reconstruction_losses, _losses("reused"), "hooks_reused")


def test_reconstruction_losses_formula_fresh15():
    err = assert_fails(checks.test_reconstruction_losses, _losses("formula"), "recovered_formula")
    assert "1 - (spliced - clean) / (zero - spliced)" in err.hint


def test_latent_logit_effect_sorted_fresh15():
    def latent_logit_effect(model, sae, latent):
        return (sae.W_dec[latent] @ model.W_out[0] @ model.W_U).sort(descending=True).values

    assert_fails(checks.test_latent_logit_effect, latent_logit_effect, "sorted")


def test_steer_with_latent_scaled_by_f_fresh15():
    def steer_with_latent(model, sae, tokens, latent, coeff):
        hook = lambda act, hook: act + coeff * sae.encode(act)[..., latent, None] * sae.W_dec[latent]
        return model.run_with_hooks(tokens, fwd_hooks=[(sae.hook_name, hook)])

    assert_fails(checks.test_steer_with_latent, steer_with_latent, "scaled_by_f")


def test_ablate_latent_f_averaged_fresh15():
    def ablate_latent(model, sae, tokens, latent):
        def hook(act, hook):
            f = sae.encode(act)[..., latent].mean(1, keepdim=True)
            return act - f[..., None] * sae.W_dec[latent]

        return model.run_with_hooks(tokens, fwd_hooks=[(sae.hook_name, hook)])

    err = assert_fails(checks.test_ablate_latent, ablate_latent, "f_averaged")
    assert "positions" in err.hint
