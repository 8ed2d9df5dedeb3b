"""Proofs for part 6's checkers: strided batches (every batch_size-th sequence, later ones counted more often),
the logit effect with the decoder row through a ReLU, a matrix normalised along an axis, or one MLP neuron's
effect alone, and an ablation hook that leaves the SAE's error plus the latent's term (read as the combination of
act, x̂, f·W_dec[latent] and b_dec the hook returns)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import tests.part6_lm_saes as checks
from tests.proving import assert_fails


def test_latent_frequencies_strided_batches():
    def latent_frequencies(model, sae, tokens, batch_size=32):
        counts, n_seq = torch.zeros(sae.d_sae), 0
        for start in range(0, tokens.shape[0], batch_size):
            b = tokens[start::batch_size]
            _, cache = model.run_with_cache(b, names_filter=sae.hook_name)
            counts += (sae.encode(cache[sae.hook_name][:, 1:]) > 0).float().sum(0).mean(0)
            n_seq += b.shape[0]
        return counts / n_seq

    assert_fails(checks.test_latent_frequencies, latent_frequencies, "strided_batches")


@pytest.mark.parametrize("bug", ["row_pointwise", "matrix_normalised", "one_neuron"])
def test_latent_logit_effect_path_slips(bug):
    def latent_logit_effect(model, sae, latent):
        W_dec = F.normalize(sae.W_dec, dim=0) if bug == "matrix_normalised" else sae.W_dec
        d = F.relu(W_dec[latent]) if bug == "row_pointwise" else W_dec[latent]
        if bug == "one_neuron":
            return (model.W_out[0] @ model.W_U)[d.abs().argmax()]
        return d @ model.W_out[0] @ model.W_U

    assert_fails(checks.test_latent_logit_effect, latent_logit_effect, bug)


def test_ablate_latent_error_plus_latent_term():
    def ablate_latent(model, sae, tokens, latent):
        def hook(act, hook):
            g = sae.encode(act).clone()
            g[..., latent] = 0
            return act - sae.decode(g)

        return model.run_with_hooks(tokens, fwd_hooks=[(sae.hook_name, hook)])

    assert_fails(checks.test_ablate_latent, ablate_latent, "hook_combination")
