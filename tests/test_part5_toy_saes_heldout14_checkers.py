"""Proofs for part 5 after the fresh35 measurement: resample_simple drawing instance 0's dead count in every
instance, a half-precision norm in W_dec_normalized, generate_batch through a transformed W or clamped features,
and resample_advanced's encoder length from instance 0 or from L1 norms."""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import solutions.part5_toy_saes as P
import tests.part5_toy_saes as checks
from tests.proving import assert_fails


def _simple_inst0(sae, frac, resample_scale):
    dead = (frac <= 0).all(dim=0)
    for i in range(sae.cfg.n_inst):
        idx = dead[i].nonzero().squeeze(-1)
        n0 = int(dead[0].sum())  # instance 0's count used for every instance
        if n0 == 0:
            continue
        d = F.normalize(torch.randn(n0, sae.cfg.d_in), dim=-1)[: idx.numel()]
        d = torch.cat([d, torch.zeros(idx.numel() - d.shape[0], sae.cfg.d_in)])
        sae.W_dec.data[i, idx] = d
        sae.W_enc.data[i][:, idx] = d.T * resample_scale
        sae.b_enc.data[i, idx] = 0.0


def test_dead_count_from_instance0():
    failure = assert_fails(checks.test_resample_simple, _simple_inst0, "dead_count")
    assert "instance 0's count" in failure.message


def test_half_precision_norm():
    class Half(P.ToySAE):
        @property
        def W_dec_normalized(self):
            W = self.W_dec
            return W / (W.half().norm(dim=-1, keepdim=True) + self.cfg.weight_normalize_eps).float()

    failure = assert_fails(checks.test_W_dec_normalized, Half, "zero_row")
    assert "low precision" in failure.hint


def _generate(transform):
    class Gen(P.ToySAE):
        def generate_batch(self, batch_size):
            x, W = transform(self.model.generate_batch(batch_size), self.model.W)
            return einops.einsum(x, W, "b i f, i d f -> b i d")

    return Gen


def test_generate_abs_and_normalised_W():
    failure = assert_fails(checks.test_generate_batch, _generate(lambda x, W: (x, W.abs())), "weights_transformed")
    assert "|W|" in failure.message
    gen = _generate(lambda x, W: (x, F.normalize(W, dim=-1)))
    failure = assert_fails(checks.test_generate_batch, gen, "weights_transformed")
    assert "normalised over feats" in failure.message


def test_generate_clamped_features():
    gen = _generate(lambda x, W: (x.clamp(max=0.5), W))
    failure = assert_fails(checks.test_generate_batch, gen, "features_clamped")
    assert "max=0.5" in failure.message


def _advanced(mode):
    def resample(sae, frac, resample_scale, batch_size):
        dead = (frac <= 0).all(dim=0)
        h = sae.generate_batch(batch_size)
        l2 = sae.forward(h)[0]["L_reconstruction"]
        for inst in range(sae.cfg.n_inst):
            idx = dead[inst].nonzero().squeeze(-1)
            w = l2[:, inst].pow(2)
            if idx.numel() == 0 or w.sum() <= 0:
                continue
            d = F.normalize(h[torch.multinomial(w, idx.numel(), replacement=True), inst] - sae.b_dec[inst], dim=-1)
            k, p = (0, 2) if mode == "inst0" else (inst, 1)
            scale = sae.W_enc[k, :, ~dead[k]].norm(p=p, dim=0).mean()
            sae.W_dec.data[inst, idx] = d
            sae.W_enc.data[inst][:, idx] = d.T * resample_scale * scale
            sae.b_enc.data[inst, idx] = 0.0

    return resample


def test_encoder_length_instance0_and_l1():
    failure = assert_fails(checks.test_resample_advanced, _advanced("inst0"), "enc_instance0")
    assert "instance 0's value" in failure.message
    failure = assert_fails(checks.test_resample_advanced, _advanced("l1"), "enc_norm_kind")
    assert "L1 norm" in failure.message
