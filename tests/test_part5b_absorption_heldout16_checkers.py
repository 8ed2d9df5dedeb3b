"""Proofs for part 5b's absorption_fraction diagnoses: decoder rows normalised over the latents (dim=1) named as the
wrong axis (not as rows left unnormalised), and the parent's latent taken as the first latent whose cosine reaches
the threshold listed among the causes of a fraction that depends on the latents' order."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import tests.part5b_absorption as checks
from tests.proving import assert_fails


def _absorption(dec_dim=-1, first_above=False):
    def absorption_fraction(features, acts, W_dec, W_features, parent_of, cos_threshold=0.3):
        cos = torch.einsum("isd,idf->isf", F.normalize(W_dec, dim=dec_dim), F.normalize(W_features, dim=1))
        n_inst = acts.shape[1]
        out = []
        for p in [f for f, q in enumerate(parent_of) if q == -1]:
            children = [f for f, q in enumerate(parent_of) if q == p]
            cases = (features[..., p] > 0) & (features[..., children] > 0).any(-1)
            above = cos[:, :, p] >= cos_threshold
            lat = above.float().argmax(-1) if first_above else cos[:, :, p].argmax(-1)
            carriers = above.clone()
            carriers[torch.arange(n_inst), lat] = False
            off = acts[:, torch.arange(n_inst), lat] == 0
            absorbed = cases & off & ((acts > 0) & carriers).any(-1)
            out.append(absorbed.sum(0) / cases.sum(0).clamp_min(1))
        return torch.stack(out, -1).to(acts.dtype)

    return absorption_fraction


def test_absorption_decoder_normalised_over_the_latents():
    err = assert_fails(checks.test_absorption_fraction, _absorption(dec_dim=1), "normalise_axis")
    assert "another axis than d_in" in err.message and "dim=1" in err.message


def test_absorption_first_latent_above_the_threshold_listed():
    err = assert_fails(checks.test_absorption_fraction, _absorption(first_above=True), "latent_order")
    assert "FIRST latent with cosine ≥ cos_threshold" in err.hint
