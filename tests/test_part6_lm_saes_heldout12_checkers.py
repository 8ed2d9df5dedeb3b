"""Proofs for part 6's checkers: a batch loop bounded by the positions axis (caught on a call with more sequences
than positions), a count hard-coded for the main call's shape, indices from another ranking than the values,
a steering row with the mean decoder row taken away, and a hooked run's logits thrown away."""

from __future__ import annotations

import pytest
import torch

import tests.part6_lm_saes as checks
from solutions import part6_lm_saes as ref
from tests.proving import assert_fails


def _frequencies(model, sae, tokens, batch_size, bug):
    counts, n_seq, n_tokens = torch.zeros(sae.d_sae), 0, 0
    axis = tokens.shape[1] if bug == "loop_over_positions" else tokens.shape[0]
    for start in range(0, axis, batch_size):
        b = tokens[start : start + batch_size]
        if len(b) == 0:
            continue
        _, cache = model.run_with_cache(b, names_filter=sae.hook_name)
        fired = sae.encode(cache[sae.hook_name][:, 1:]) > 0
        counts += fired.float().sum((0, 1))
        n_seq, n_tokens = n_seq + len(b), n_tokens + fired.shape[0] * fired.shape[1]
    if bug == "small_tokens":
        return counts / (n_seq * 47)  # 47 positions after BOS: the main call's, hard-coded
    return counts / n_tokens


@pytest.mark.parametrize("bug", ["loop_over_positions", "small_tokens"])
def test_latent_frequencies_shape_slips(bug):
    def latent_frequencies(model, sae, tokens, batch_size=32):
        return _frequencies(model, sae, tokens, batch_size, bug)

    assert_fails(checks.test_latent_frequencies, latent_frequencies, bug)


def test_top_activations_indices_from_another_ranking():
    def top_activations(acts, k):
        m = acts.clone()
        m[:, 0] = -torch.inf
        values = m.flatten().topk(k).values
        flat = m.flatten().argsort()[-k:]
        return values, flat // acts.shape[1], flat % acts.shape[1]

    assert_fails(checks.test_top_activations, top_activations, "indices_order")


def test_steer_row_minus_mean_row():
    def steer_with_latent(model, sae, tokens, latent, coeff):
        d = sae.W_dec[latent] - sae.W_dec.mean(0)
        return model.run_with_hooks(tokens, fwd_hooks=[(sae.hook_name, lambda act, hook: act + coeff * d)])

    assert_fails(checks.test_steer_with_latent, steer_with_latent, "steer_shifted")


def test_ablate_hooked_run_thrown_away():
    def ablate_latent(model, sae, tokens, latent):
        ref.ablate_latent(model, sae, tokens, latent)
        return model(tokens)

    assert_fails(checks.test_ablate_latent, ablate_latent, "noop")
