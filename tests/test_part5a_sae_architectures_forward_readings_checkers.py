"""Proofs for `tests.part5a_sae_architectures_forward_readings`: b_mag in the Gated gate, the JumpReLU threshold in
another base and a bandwidth scaled by θ, TopK's input ReLU'd / encoder normalised / L1 loss, a Gated L1 loss,
Heaviside's backward reading its output, AuxK's decoder re-normalised over d_sae or decoded summed over instances."""

from __future__ import annotations

import einops
import pytest
import torch
import torch.nn.functional as F

import solutions.part5a_sae_architectures as A
import tests.part5a_sae_architectures as C
from tests.proving import assert_fails


def _enc(x, W_enc):
    return einops.einsum(x, W_enc, "batch inst d_in, inst d_in d_sae -> batch inst d_sae")


def _dec(acts, W_dec):
    return einops.einsum(acts, W_dec, "batch inst d_sae, inst d_sae d_in -> batch inst d_in")


def _gated(mode):
    def forward(self, h):
        proj = _enc(h - self.b_dec, self.W_enc)
        gate_pre = proj + self.b_enc + (self.b_mag if mode == "b_mag" else 0)
        acts = (gate_pre > 0).to(h.dtype) * F.relu(proj * self.r_mag.exp() + self.b_mag)
        h_rec = _dec(acts, self.W_dec_normalized) + self.b_dec
        via = _dec(F.relu(gate_pre), self.W_dec_normalized.detach()) + self.b_dec.detach()
        rec = (h_rec - h).abs().mean(-1) if mode == "l1" else (h_rec - h).pow(2).mean(-1)
        ld = {"L_reconstruction": rec, "L_sparsity": F.relu(gate_pre).sum(-1), "L_aux": (via - h).pow(2).mean(-1)}
        loss = (ld["L_reconstruction"] + self.sparsity_coeff * ld["L_sparsity"] + ld["L_aux"]).mean(0).sum()
        return ld, loss, acts, h_rec

    return type("Gated", (A.GatedToySAE,), {"forward": forward})


@pytest.mark.parametrize(("mode", "code"), [("b_mag", "b_mag_in_gate"), ("l1", "not_squared")])
def test_gated_readings_are_named(mode, code):
    assert_fails(C.test_gated_forward, _gated(mode), code)


def _jumprelu(mode):
    def forward(self, h):
        pre = _enc(h - self.b_dec, self.W_enc) + self.b_enc
        lt, bw = self.log_threshold, self.cfg.jumprelu_bandwidth
        th = {"10": 10**lt, "2": 2**lt, "raw": lt}.get(mode, lt.exp()).expand_as(pre)
        acts = A.JumpReLU.apply(pre, th, bw * lt.exp().mean().item() if mode == "rel_bw" else bw)
        h_rec = _dec(acts, self.W_dec_normalized) + self.b_dec
        ld = {"L_reconstruction": (h_rec - h).pow(2).mean(-1), "L_sparsity": A.Heaviside.apply(pre, th, bw).sum(-1)}
        return ld, (ld["L_reconstruction"] + self.sparsity_coeff * ld["L_sparsity"]).mean(0).sum(), acts, h_rec

    return type("JumpReLUSAE", (A.JumpReLUToySAE,), {"forward": forward})


@pytest.mark.parametrize(
    ("mode", "code"),
    [("10", "theta_base_10"), ("2", "theta_base_2"), ("rel_bw", "bandwidth_scaled")],
)
def test_jumprelu_readings_are_named(mode, code):
    assert_fails(C.test_jumprelu_forward, _jumprelu(mode), code)


def _topk(mode):
    def forward(self, h):
        x = F.relu(h - self.b_dec) if mode == "relu_x" else h - self.b_dec
        W_enc = self.W_enc / self.W_enc.norm(dim=1, keepdim=True) if mode == "norm_enc" else self.W_enc
        pre = F.relu(_enc(x, W_enc) + self.b_enc)
        top = pre.topk(self.cfg.k, dim=-1)
        acts = torch.zeros_like(pre).scatter(-1, top.indices, top.values)
        h_rec = _dec(acts, self.W_dec_normalized) + self.b_dec
        rec = (h_rec - h).abs().mean(-1) if mode == "l1" else (h_rec - h).pow(2).mean(-1)
        return {"L_reconstruction": rec, "L_sparsity": (acts != 0).to(h.dtype).sum(-1)}, rec.mean(0).sum(), acts, h_rec

    return type("TopK", (A.TopKToySAE,), {"forward": forward})


@pytest.mark.parametrize(
    ("mode", "code"), [("relu_x", "relu_on_input"), ("norm_enc", "encoder_normalised"), ("l1", "not_squared")]
)
def test_topk_readings_are_named(mode, code):
    assert_fails(C.test_topk_forward, _topk(mode), code)


class _HeavisideSavingOutput(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, threshold, bandwidth):
        out = (x > threshold).to(x.dtype)
        ctx.save_for_backward(out, threshold)  # the output, not x
        ctx.bandwidth = bandwidth
        return out

    @staticmethod
    def backward(ctx, g):
        x, th = ctx.saved_tensors
        return torch.zeros_like(x), -(((x - th) / ctx.bandwidth).abs() < 0.5).to(g.dtype) / ctx.bandwidth * g, None


def test_heaviside_saving_its_output_is_named():
    assert_fails(C.test_heaviside, _HeavisideSavingOutput, "saved_output")


def _auxk(mode):
    def auxk_loss(pre, residual, dead, W_dec, k_aux):
        top = torch.where(dead, pre, -torch.inf).topk(k_aux, dim=-1)
        vals = torch.where(top.values.isfinite(), top.values, torch.zeros_like(top.values))
        acts = torch.zeros_like(pre).scatter(-1, top.indices, vals)
        W = F.normalize(W_dec, dim=1) if mode == "renorm" else W_dec
        r_hat = einops.einsum(acts, W, "b i s, i s d -> b d")[:, None] if mode == "sum" else _dec(acts, W)
        return (residual - r_hat).pow(2).mean(-1)

    return auxk_loss


@pytest.mark.parametrize(
    ("mode", "code"), [("renorm", "decoder_renormalised_d_sae"), ("sum", "decode_summed_over_instances")]
)
def test_auxk_readings_are_named(mode, code):
    assert_fails(C.test_auxk_loss, _auxk(mode), code)
