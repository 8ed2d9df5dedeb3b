"""Proofs for part 5 after the fresh34 measurement: resample_advanced zeroing b_enc in a skipped (all-zero-loss)
instance, generate_batch mapping the features' presence (0/1), L_sparsity as an L0 count, the sparsity term off by
batch / n_inst, and resample_advanced's live set shared by every instance."""

from __future__ import annotations

import einops
import torch

import solutions.part5_toy_saes as P
import tests.part5_toy_saes as checks
from tests.proving import assert_fails


def _resampler(mode):
    def resample(sae, frac, resample_scale, batch_size):
        dead = (frac <= 0).all(dim=0)
        h = sae.generate_batch(batch_size)
        l2 = sae.forward(h)[0]["L_reconstruction"]
        if mode == "bias_all":
            sae.b_enc.data[dead] = 0.0  # every dead latent, the skipped instance's too
        for inst in range(sae.cfg.n_inst):
            idx = dead[inst].nonzero().squeeze(-1)
            w = l2[:, inst].pow(2)
            if idx.numel() == 0 or w.sum() <= 0:
                continue
            d = h[torch.multinomial(w, idx.numel(), replacement=True), inst] - sae.b_dec[inst]
            d = d / d.norm(dim=-1, keepdim=True).clamp_min(1e-12)
            live = ~dead.any(0) if mode == "pooled" else ~dead[inst]
            scale = sae.W_enc[inst, :, live].norm(dim=0).mean()
            sae.W_dec.data[inst, idx] = d
            sae.W_enc.data[inst][:, idx] = d.T * resample_scale * scale
            sae.b_enc.data[inst, idx] = 0.0

    return resample


def test_skipped_instance_bias():
    failure = assert_fails(checks.test_resample_advanced, _resampler("bias_all"), "skipped_instance_bias")
    assert "-100 → 0" in failure.message


def test_live_set_pooled():
    failure = assert_fails(checks.test_resample_advanced, _resampler("pooled"), "live_set_pooled")
    assert "~dead.any(0)" in failure.message


def test_feature_presence():
    class Presence(P.ToySAE):
        def generate_batch(self, batch_size):
            x = (self.model.generate_batch(batch_size) > 0).float()
            return einops.einsum(x, self.model.W, "b i f, i d f -> b i d")

    failure = assert_fails(checks.test_generate_batch, Presence, "feature_presence")
    assert "presence (0/1" in failure.hint


def _forward(mode):
    class Forward(P.ToySAE):
        def forward(self, h):
            acts = torch.relu(einops.einsum(h - self.b_dec, self.W_enc, "b i d, i d s -> b i s") + self.b_enc)
            h_rec = einops.einsum(acts, self.W_dec_normalized, "b i s, i s d -> b i d") + self.b_dec
            L_rec = (h_rec - h).pow(2).mean(-1)
            L_sp = (acts > 0).float().sum(-1) if mode == "l0" else acts.abs().sum(-1)
            if mode == "batch_over_inst":
                loss = L_rec.mean(0).sum() + (self.sparsity_coeff * L_sp.sum(0)).sum() / h.shape[1]
            else:
                loss = (L_rec + self.sparsity_coeff * L_sp).mean(0).sum()
            return {"L_reconstruction": L_rec, "L_sparsity": L_sp}, loss, acts, h_rec

    return Forward


def test_l0_count():
    failure = assert_fails(checks.test_forward, _forward("l0"), "l0_count")
    assert "L0 count" in failure.message


def test_sparsity_batch_over_inst():
    failure = assert_fails(checks.test_forward, _forward("batch_over_inst"), "loss_parts")
    assert "batch / n_inst" in failure.message
