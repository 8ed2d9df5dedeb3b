"""Proofs for the SAE forwards of part 5a after the fresh29 measurement: the Gated SAE's L_sparsity weighted by the
unnormalised decoder norms and exp(r_mag) scaling the decoder rows are named; JumpReLU applied as a soft threshold
(pre - θ kept) is named; TopK's L_reconstruction against the centred input h - b_dec is named by the shared
reconstruction-target reading (and a loss_dict entry nobody diagnoses still gets its formula as the hint, never
None); an L0 count equal to d_sae on every example is named as every latent counted."""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import solutions.part5a_sae_architectures as A
import tests.part5a_sae_architectures as C
from tests.proving import assert_fails


def _dec(acts, W):
    return einops.einsum(acts, W, "b i s, i s d -> b i d")


def _gated(mode):
    def forward(self, h):
        proj = einops.einsum(h - self.b_dec, self.W_enc, "b i d, i d s -> b i s")
        gate = proj + self.b_enc
        acts = (gate > 0).to(h.dtype) * F.relu(proj * self.r_mag.exp() + self.b_mag)
        W = self.W_dec_normalized
        h_rec = _dec(acts, W * self.r_mag.exp()[..., None] if mode == "rmag_dec" else W) + self.b_dec
        sp = F.relu(gate) * self.W_dec.norm(dim=-1) if mode == "norms" else F.relu(gate)
        aux = _dec(F.relu(gate), W.detach()) + self.b_dec.detach()
        d = {
            "L_reconstruction": (h_rec - h).pow(2).mean(-1),
            "L_sparsity": sp.sum(-1),
            "L_aux": (aux - h).pow(2).mean(-1),
        }
        per = d["L_reconstruction"] + self.sparsity_coeff * d["L_sparsity"] + d["L_aux"]
        return d, per.mean(0).sum(), acts, h_rec

    return type("G", (A.GatedToySAE,), {"forward": forward})


def test_gated_sparsity_decoder_norms():
    err = assert_fails(C.test_gated_forward, _gated("norms"), "sparsity_decoder_norms")
    assert "unnormalised decoder row" in err.hint


def test_gated_r_mag_scales_decoder():
    assert_fails(C.test_gated_forward, _gated("rmag_dec"), "r_mag_scales_decoder")


def _jumprelu_soft():
    def forward(self, h):
        pre = einops.einsum(h - self.b_dec, self.W_enc, "b i d, i d s -> b i s") + self.b_enc
        th, bw = self.log_threshold.exp().expand_as(pre), self.cfg.jumprelu_bandwidth
        acts = A.JumpReLU.apply(pre - th, torch.zeros_like(pre), bw)
        h_rec = _dec(acts, self.W_dec_normalized) + self.b_dec
        d = {"L_reconstruction": (h_rec - h).pow(2).mean(-1), "L_sparsity": A.Heaviside.apply(pre, th, bw).sum(-1)}
        return d, (d["L_reconstruction"] + self.sparsity_coeff * d["L_sparsity"]).mean(0).sum(), acts, h_rec

    return type("J", (A.JumpReLUToySAE,), {"forward": forward})


def test_jumprelu_soft_threshold():
    err = assert_fails(C.test_jumprelu_forward, _jumprelu_soft(), "soft_threshold")
    assert "soft threshold" in err.hint


def _topk(mode):
    def forward(self, h):
        pre = F.relu(einops.einsum(h - self.b_dec, self.W_enc, "b i d, i d s -> b i s") + self.b_enc)
        top = pre.topk(self.cfg.k, dim=-1)
        acts = torch.zeros_like(pre).scatter(-1, top.indices, top.values)
        h_rec = _dec(acts, self.W_dec_normalized) + self.b_dec
        rec = (h_rec - (h - self.b_dec if mode == "centred" else h)).pow(2).mean(-1)
        if mode == "odd":  # no reading names this: the hint is still the formula
            rec = rec + 0.01 * h[..., 0].sin().abs()
        sp = ((acts >= 0) if mode == "ge0" else (acts > 0)).to(h.dtype).sum(-1)
        return {"L_reconstruction": rec, "L_sparsity": sp}, (h_rec - h).pow(2).mean(-1).mean(0).sum(), acts, h_rec

    return type("T", (A.TopKToySAE,), {"forward": forward})


def test_topk_reconstruction_vs_centred_input():
    err = assert_fails(C.test_topk_forward, _topk("centred"), "reconstruction_target")
    assert "h - b_dec" in err.message


def test_loss_dict_hint_never_none():
    err = assert_fails(C.test_topk_forward, _topk("odd"), "values")
    assert err.hint and "(h_reconstructed - h) ** 2" in err.hint


def test_topk_every_latent_counted():
    err = assert_fails(C.test_topk_forward, _topk("ge0"), "every_latent_counted")
    assert "7 = d_sae" in err.message and ">= 0" in err.hint
