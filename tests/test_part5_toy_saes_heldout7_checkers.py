"""Proofs for part 5's diagnoses added after the fresh17 held-out measurement: generate_batch centring each h over
d_in, forward's L_sparsity leaving b_enc out, resample_simple pooling the dead mask over instances (a probe whose
instances' dead sets differ), and a W_dec_normalized property that reads itself (RecursionError)."""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import solutions.part5_toy_saes as P
import tests.part5_toy_saes as checks
from tests.proving import assert_fails, assert_passes


def test_generate_batch_centred_over_d_in():
    def generate_batch(self, batch_size):
        h = einops.einsum(self.model.generate_batch(batch_size), self.model.W, "b i f, i d f -> b i d")
        return h - h.mean(-1, keepdim=True)

    failure = assert_fails(
        checks.test_generate_batch, type("G", (P.ToySAE,), {"generate_batch": generate_batch}), "centred_d_in"
    )
    assert "d_in" in failure.hint


def test_forward_sparsity_without_b_enc():
    def forward(self, h):
        proj = einops.einsum(h - self.b_dec, self.W_enc, "b i d, i d s -> b i s")
        acts = F.relu(proj + self.b_enc)
        h_rec = einops.einsum(acts, self.W_dec_normalized, "b i s, i s d -> b i d") + self.b_dec
        rec = (h_rec - h).pow(2).mean(-1)
        sp = F.relu(proj).abs().sum(-1)  # b_enc left out of the penalty
        loss = (rec + self.sparsity_coeff * sp).mean(0).sum()
        return {"L_reconstruction": rec, "L_sparsity": sp}, loss, acts, h_rec

    failure = assert_fails(checks.test_forward, type("F", (P.ToySAE,), {"forward": forward}), "sparsity_no_b_enc")
    assert "b_enc" in failure.hint


def _resample(pool: bool):
    def resample_simple(sae, frac, resample_scale):
        dead = (frac <= 0).all(dim=0)
        if pool:  # a latent dead in any instance, resampled in all of them
            dead = dead.any(0, keepdim=True).expand_as(dead)
        n = int(dead.sum())
        if n == 0:
            return
        d = F.normalize(torch.randn(n, sae.cfg.d_in, device=sae.W_enc.device), dim=-1)
        sae.W_dec.data[dead] = d
        sae.W_enc.data.transpose(-1, -2)[dead] = d * resample_scale
        sae.b_enc.data[dead] = 0.0

    return resample_simple


def test_resample_simple_dead_mask_pooled_over_instances():
    failure = assert_fails(checks.test_resample_simple, _resample(True), "dead_pooled")
    assert "union" in failure.message


def test_resample_simple_per_instance_mask_passes():
    assert_passes(checks.test_resample_simple, _resample(False))


def test_W_dec_normalized_reads_itself():
    def W_dec_normalized(self):
        return self.W_dec_normalized / (
            self.W_dec_normalized.norm(dim=-1, keepdim=True) + self.cfg.weight_normalize_eps
        )

    failure = assert_fails(
        checks.test_W_dec_normalized,
        type("N", (P.ToySAE,), {"W_dec_normalized": property(W_dec_normalized)}),
        "recursion",
    )
    assert "reads itself" in failure.hint
