"""Proof: latent_frequencies counting act > 1e-2 as a firing is read back as a threshold above 0."""

from __future__ import annotations

import torch

import tests.part6_lm_saes as checks
from tests.proving import assert_fails


def test_latent_frequencies_threshold_above_zero():
    def latent_frequencies(model, sae, tokens, batch_size=32):
        fired = []
        for chunk in tokens.split(batch_size):
            _, cache = model.run_with_cache(chunk, names_filter=sae.hook_name)
            fired.append((sae.encode(cache[sae.hook_name])[:, 1:] > 1e-2).flatten(0, 1).float())
        return torch.cat(fired).mean(0)

    err = assert_fails(checks.test_latent_frequencies, latent_frequencies, "firing_threshold")
    assert "0.01" in err.hint
