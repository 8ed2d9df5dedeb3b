"""Proofs after the fresh42 fix round: live decoder rows renormalised (same direction, new length), sign
directions on the cube's corners, which instances a loop skipped (one short of the end, or a small-loss threshold
on an instance with small but nonzero losses), latent indices used as example indices, row-wise transforms read
back in W_dec_normalized, a numel divisor in the loss and a mean over d_in in the encoder."""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import solutions.part5_toy_saes as P
import tests.part5_toy_saes as checks
from tests.proving import assert_fails


def _simple(mod):
    def resample(sae, frac, resample_scale):
        dead = (frac <= 0).all(0)
        d = torch.randn(int(dead.sum()), sae.cfg.d_in, device=sae.W_enc.device)
        d = d.sign() if mod == "sign" else d
        d = d / d.norm(dim=-1, keepdim=True)
        sae.W_dec.data[dead] = d
        sae.W_enc.data.transpose(-1, -2)[dead] = d * resample_scale
        sae.b_enc.data[dead] = 0.0
        if mod == "renorm_all":
            sae.W_dec.data /= sae.W_dec.data.norm(dim=-1, keepdim=True)

    return resample


def test_live_rows_renormalised_and_sign_directions_named():
    err = assert_fails(checks.test_resample_simple, _simple("renorm_all"), "live_rows_renormalised")
    assert "renormalised to unit length" in err.hint
    err = assert_fails(checks.test_resample_simple, _simple("sign"), "sign_directions")
    assert "corners" in err.message and "sign" in err.hint


def _advanced(mod):
    def resample(sae, frac, resample_scale, batch_size):
        dead = (frac <= 0).all(0)
        h = sae.generate_batch(batch_size)
        l2 = sae.forward(h)[0]["L_reconstruction"]
        with torch.no_grad():
            for i in range(sae.cfg.n_inst - 1 if mod == "last" else sae.cfg.n_inst):
                idx = dead[i].nonzero().squeeze(-1)
                w = l2[:, i].pow(2)
                if idx.numel() == 0 or w.sum() <= 0 or (mod == "thresh" and w.max() < 1e-3):
                    continue
                picked = torch.multinomial(w, idx.numel(), replacement=True)
                d = (h[idx, i] if mod == "deadidx" else h[picked, i]) - sae.b_dec[i]
                d = d / d.norm(dim=-1, keepdim=True)
                scale = sae.W_enc[i, :, ~dead[i]].norm(dim=0).mean()
                sae.W_dec.data[i, idx] = d
                sae.W_enc.data[i][:, idx] = d.T * resample_scale * scale
                sae.b_enc.data[i, idx] = 0.0

    return resample


def test_skipped_instances_and_latent_index_named():
    err = assert_fails(checks.test_resample_advanced, _advanced("last"), "instances_skipped")
    assert "stops one short" in err.hint and "return" not in err.hint
    err = assert_fails(checks.test_resample_advanced, _advanced("deadidx"), "latent_index_as_example")
    assert "`idx`" in err.message


def _norm(fn):
    return type("S", (P.ToySAE,), {"W_dec_normalized": property(fn)})


def test_row_transforms_read_back():
    err = assert_fails(checks.test_W_dec_normalized, _norm(lambda s: F.softmax(s.W_dec, dim=-1)), "row_transform")
    assert "softmax" in err.message
    ln = lambda s: F.layer_norm(s.W_dec, s.W_dec.shape[-1:], eps=s.cfg.weight_normalize_eps)
    assert "layer norm" in assert_fails(checks.test_W_dec_normalized, _norm(ln), "row_transform").message


def _forward(mod):
    def forward(self, h):
        hc = h - self.b_dec
        if mod == "encmean":
            pre = (hc[..., None] * self.W_enc).mean(-2) + self.b_enc
        else:
            pre = einops.einsum(hc, self.W_enc, "b i d, i d s -> b i s") + self.b_enc
        acts = F.relu(pre)
        hr = einops.einsum(acts, self.W_dec_normalized, "b i s, i s d -> b i d") + self.b_dec
        Lr, Ls = (hr - h).pow(2).mean(-1), acts.abs().sum(-1)
        total = Lr + self.sparsity_coeff * Ls
        loss = total.sum() / h.numel() if mod == "numel" else total.mean(0).sum()
        return {"L_reconstruction": Lr, "L_sparsity": Ls}, loss, acts, hr

    return type("S", (P.ToySAE,), {"forward": forward})


def test_numel_divisor_and_encoder_mean_named():
    err = assert_fails(checks.test_forward, _forward("numel"), "loss_parts")
    assert "1/(d_in · n_inst)" in err.message and "h.numel()" in err.message
    assert_fails(checks.test_forward, _forward("encmean"), "encoder_mean_over_d_in")
