"""Proofs for the part 6 checkers from the fresh13 held-out trial (the others are in test_part6_lm_saes_checkers.py
and ..._heldout*_checkers.py)."""

from __future__ import annotations

import pytest
import torch

import tests.part6_lm_saes as checks
from tests.proving import assert_fails, assert_passes


def _frequencies(bug=None):
    def latent_frequencies(model, sae, tokens, batch_size=32):
        fired, n = 0, 0
        for start in range(0, tokens.shape[0], batch_size):
            _, cache = model.run_with_cache(tokens[start : start + batch_size], names_filter=sae.hook_name)
            acts = sae.encode(cache[sae.hook_name])[:, 1:]
            fired = fired + (acts > 0).sum((0, 1)).double()
            n += acts.shape[0] * acts.shape[1]
        freq = (fired / n).float()
        return freq.clamp_min(1e-10).log10() if bug == "log10" else freq

    return latent_frequencies


def test_frequencies_in_batches_passes_fresh13():
    assert_passes(checks.test_latent_frequencies, _frequencies())


def test_frequencies_log10_fresh13():
    assert_fails(checks.test_latent_frequencies, _frequencies("log10"), "log_scale")


def _top(bug):
    def top_activations(acts, k):
        masked = acts.clone()
        masked[:, 0] = -acts.max() if bug == "neg_max" else acts.min() - 1
        flat = masked.flatten()
        idx = flat.abs().topk(k).indices if bug == "abs_rank" else flat.topk(k).indices
        seq = acts.shape[1]
        return flat[idx], idx // seq, idx % seq

    return top_activations


@pytest.mark.parametrize("bug, code", [("neg_max", "bos_mask_not_lowest"), ("abs_rank", "abs_ranked")])
def test_top_activations_fresh13(bug, code):
    assert_fails(checks.test_top_activations, _top(bug), code)


def test_top_activations_min_minus_one_passes_fresh13():
    assert_passes(checks.test_top_activations, _top(None))


def test_logit_effect_float64_fresh13():
    def latent_logit_effect(model, sae, latent):
        return (torch.einsum("m,md->d", sae.W_dec[latent], model.W_out[0]) @ model.W_U).double()

    assert_fails(checks.test_latent_logit_effect, latent_logit_effect, "dtype")


def _steer(bug):
    def steer_with_latent(model, sae, tokens, latent, coeff):
        d = sae.W_dec[latent]
        if bug == "resid_pre":
            vec = coeff * (d @ model.W_out[0])
            return model.run_with_hooks(tokens, fwd_hooks=[("blocks.0.hook_resid_pre", lambda a, hook: a + vec)])
        one = torch.zeros(sae.d_sae, device=d.device)
        one[latent] = 1
        vec = coeff * sae.decode(one)
        return model.run_with_hooks(tokens, fwd_hooks=[(sae.hook_name, lambda a, hook: a + vec)])

    return steer_with_latent


@pytest.mark.parametrize("bug, code", [("resid_pre", "resid_before_mlp"), ("decode", "decode_times_coeff")])
def test_steer_fresh13(bug, code):
    assert_fails(checks.test_steer_with_latent, _steer(bug), code)


def _ablate(bug):
    def ablate_latent(model, sae, tokens, latent):
        def hook(act, hook):
            f = sae.encode(act)[..., latent]
            if bug == "zero_where_fires":
                return act * (f == 0)[..., None].to(act.dtype)
            return act - f[:, -1:].expand_as(f)[..., None] * sae.W_dec[latent]

        return model.run_with_hooks(tokens, fwd_hooks=[(sae.hook_name, hook)])

    return ablate_latent


@pytest.mark.parametrize("bug, code", [("zero_where_fires", "zeroed_where_fires"), ("last_f", "one_position_f")])
def test_ablate_fresh13(bug, code):
    assert_fails(checks.test_ablate_latent, _ablate(bug), code)
