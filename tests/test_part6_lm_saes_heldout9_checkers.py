"""Proofs for the part 6 checkers: state carried between calls, other positions or another 'fires' in the
frequencies, a loss increase or perplexities in the losses, normalised logit effects, a BOS mask of -1 (the others
are in test_part6_lm_saes_checkers.py and ..._heldout*_checkers.py)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import tests.part6_lm_saes as checks
from tests.proving import assert_fails


@pytest.mark.parametrize("bug, code", [("drop_last_too", "positions"), ("argmax_only", "argmax_only")])
def test_latent_frequencies_positions_and_argmax(bug, code):
    def latent_frequencies(model, sae, tokens, batch_size=32):
        counts = torch.zeros(sae.d_sae, device=sae.W_enc.device)
        n = 0
        for batch in torch.split(tokens, batch_size):
            _, cache = model.run_with_cache(batch, names_filter=sae.hook_name)
            acts = sae.encode(cache[sae.hook_name])
            acts = acts[:, 1:-1] if bug == "drop_last_too" else acts[:, 1:]
            fired = F.one_hot(acts.argmax(-1), sae.d_sae) if bug == "argmax_only" else acts > 0
            counts += fired.float().sum((0, 1))
            n += acts.shape[0] * acts.shape[1]
        return counts / n

    assert_fails(checks.test_latent_frequencies, latent_frequencies, code)


@pytest.mark.parametrize("bug, code", [("perplexity", "perplexity"), ("increase", "loss_increase")])
def test_reconstruction_losses_perplexity_and_increase(bug, code):
    def reconstruction_losses(model, sae, tokens):
        clean = model(tokens, return_type="loss").item()
        splice = lambda act, hook: sae.decode(sae.encode(act))
        spliced = model.run_with_hooks(tokens, return_type="loss", fwd_hooks=[(sae.hook_name, splice)]).item()
        zero_fn = lambda act, hook: torch.zeros_like(act)
        zero = model.run_with_hooks(tokens, return_type="loss", fwd_hooks=[(sae.hook_name, zero_fn)]).item()
        e = math.exp if bug == "perplexity" else (lambda x: x)
        rec = (e(zero) - e(spliced)) / (e(zero) - e(clean))
        sp = spliced - clean if bug == "increase" else spliced
        return {"clean": clean, "spliced": sp, "zero_ablated": zero, "recovered": rec}

    assert_fails(checks.test_reconstruction_losses, reconstruction_losses, code)


def test_top_activations_bos_masked_minus_one():
    def top_activations(acts, k):
        masked = acts.clone()
        masked[:, 0] = -1.0  # only low when activations are >= 0
        vals, idx = masked.flatten().topk(k)
        return vals, idx // acts.shape[1], idx % acts.shape[1]

    err = assert_fails(checks.test_top_activations, top_activations, "bos_mask_not_lowest")
    assert "masked with -1" in err.hint


@pytest.mark.parametrize(
    "bug, code, words",
    [("probabilities", "probabilities", "softmax"), ("cosine", "cosine", "cosine"), ("minus_max", "offset", "max")],
)
def test_latent_logit_effect_normalised(bug, code, words):
    def latent_logit_effect(model, sae, latent):
        d = torch.einsum("m,md->d", sae.W_dec[latent], model.W_out[0])
        e = d @ model.W_U
        if bug == "probabilities":
            return torch.softmax(model.b_U + e, -1) - torch.softmax(model.b_U, -1)
        if bug == "cosine":
            return F.cosine_similarity(d[:, None], model.W_U, dim=0)
        return e - e.max()

    err = assert_fails(checks.test_latent_logit_effect, latent_logit_effect, code)
    assert words in err.hint and "bias" not in err.hint


@pytest.mark.parametrize("cached", ["vector", "latent", "coeff"])
def test_steer_with_latent_cached_between_calls(cached):
    memory = {}

    def steer_with_latent(model, sae, tokens, latent, coeff):
        latent = memory.setdefault("latent", latent) if cached in ("vector", "latent") else latent
        coeff = memory.setdefault("coeff", coeff) if cached in ("vector", "coeff") else coeff
        vec = coeff * sae.W_dec[latent]
        return model.run_with_hooks(tokens, fwd_hooks=[(sae.hook_name, lambda act, hook: act + vec)])

    err = assert_fails(checks.test_steer_with_latent, steer_with_latent, "stale_call")
    assert "first call" in err.hint


def test_steer_with_latent_scaled_by_max_activation():
    def steer_with_latent(model, sae, tokens, latent, coeff):
        hook = lambda act, hook: act + sae.encode(act)[..., latent].max() * coeff * sae.W_dec[latent]
        return model.run_with_hooks(tokens, fwd_hooks=[(sae.hook_name, hook)])

    err = assert_fails(checks.test_steer_with_latent, steer_with_latent, "sequences_mixed")
    assert "does not depend on the activations" in err.hint and "own activation" not in err.hint


@pytest.mark.parametrize("cached, code", [("f", "stale_f"), ("result", "stale_call")])
def test_ablate_latent_cached_between_calls(cached, code):
    memory = {}

    def ablate_latent(model, sae, tokens, latent):
        def hook(act, hook):
            f = memory.setdefault("f", sae.encode(act)[..., latent])
            return act - f[..., None] * sae.W_dec[latent]

        if cached == "result":
            return memory.setdefault("out", model.run_with_hooks(tokens, fwd_hooks=[(sae.hook_name, hook)]))
        return model.run_with_hooks(tokens, fwd_hooks=[(sae.hook_name, hook)])

    err = assert_fails(checks.test_ablate_latent, ablate_latent, code)
    assert "first call" in err.hint
