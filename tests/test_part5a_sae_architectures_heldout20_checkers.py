"""Proofs for part 5a after the fresh40 measurement: which elementwise function each path applies is read back
(the Gated magnitude scale softplus/sigmoid(r_mag), a ReLU before the magnitude scaling, TopK values kept without
b_enc, AuxK decoding sigmoid/exp/softplus of the chosen dead pre-activations), the JumpReLU θ-gradient factor x/θ or
x is named, and the TopK loss divided by k is probed at k = 5 first, so the factor names k (not ½ or √d_in)."""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import solutions.part5a_sae_architectures as A
import tests.part5a_sae_architectures as C
from tests.proving import assert_fails, assert_passes


def _gated(mode):
    class S(A.GatedToySAE):
        def forward(self, h):
            x = h - self.b_dec
            proj = einops.einsum(x, self.W_enc, "b i d, i d s -> b i s")
            scale = F.softplus(self.r_mag) if mode == "softplus" else self.r_mag.exp()
            mag_pre = (proj.relu() if mode == "relu_first" else proj) * scale + self.b_mag
            acts = ((proj + self.b_enc) > 0).to(h.dtype) * F.relu(mag_pre)
            W = self.W_dec_normalized
            h_rec = einops.einsum(acts, W, "b i s, i s d -> b i d") + self.b_dec
            gate_post = F.relu(proj + self.b_enc)
            via = einops.einsum(gate_post, W.detach(), "b i s, i s d -> b i d") + self.b_dec.detach()
            ld = {
                "L_reconstruction": (h_rec - h).pow(2).mean(-1),
                "L_sparsity": gate_post.sum(-1),
                "L_aux": (via - h).pow(2).mean(-1),
            }
            per = ld["L_reconstruction"] + self.sparsity_coeff * ld["L_sparsity"] + ld["L_aux"]
            return ld, per.mean(0).sum(), acts, h_rec

    return S


def test_gated_magnitude_scale_function_named():
    failure = assert_fails(C.test_gated_forward, _gated("softplus"), "r_mag_softplus")
    assert "softplus(r_mag)" in failure.hint


def test_gated_relu_before_magnitude_scaling_named():
    assert_fails(C.test_gated_forward, _gated("relu_first"), "relu_before_mag_scale")


def test_gated_correct_passes():
    assert_passes(C.test_gated_forward, _gated("good"))


def _jumprelu(factor):
    class S(A.JumpReLU):
        @staticmethod
        def backward(ctx, g):
            x, t = ctx.saved_tensors
            bw = ctx.bandwidth
            k = ((x - t) / bw).abs().lt(0.5).to(x.dtype) / bw
            return (x > t).to(x.dtype) * g, -factor(x, t) * k * g, None

    return S


def test_jumprelu_theta_factor_read_back():
    assert_fails(C.test_jumprelu, _jumprelu(lambda x, t: x / t), "x_over_theta_factor")
    assert_fails(C.test_jumprelu, _jumprelu(lambda x, t: x), "x_factor")
    assert_passes(C.test_jumprelu, _jumprelu(lambda x, t: t))


def _topk(mode):
    class S(A.TopKToySAE):
        def forward(self, h):
            proj = einops.einsum(h - self.b_dec, self.W_enc, "b i d, i d s -> b i s")
            pre = F.relu(proj + self.b_enc)
            top = pre.topk(self.cfg.k, dim=-1)
            vals = F.relu(proj).gather(-1, top.indices) if mode == "no_b_enc" else top.values
            acts = torch.zeros_like(pre).scatter(-1, top.indices, vals)
            h_rec = einops.einsum(acts, self.W_dec_normalized, "b i s, i s d -> b i d") + self.b_dec
            rec = (h_rec - h).pow(2).mean(-1)
            loss = rec.mean(0).sum() / (self.cfg.k if mode == "per_k" else 1)
            return {"L_reconstruction": rec, "L_sparsity": (acts > 0).to(h.dtype).sum(-1)}, loss, acts, h_rec

    return S


def test_topk_values_without_b_enc_named():
    assert_fails(C.test_topk_forward, _topk("no_b_enc"), "kept_values_without_b_enc")


def test_topk_loss_divided_by_k_names_k_not_half_or_root():
    failure = assert_fails(C.test_topk_forward, _topk("per_k"), "loss_parts")
    assert "cfg.k" in failure.message and "½" not in failure.message and "√" not in failure.message
    assert_passes(C.test_topk_forward, _topk("good"))


def _auxk(fn):
    def f(pre, residual, dead, W_dec, k_aux):
        top = torch.where(dead, pre, -torch.inf).topk(k_aux, dim=-1)
        acts = torch.zeros_like(pre).scatter(-1, top.indices, fn(top.values))
        return (residual - einops.einsum(acts, W_dec, "b i s, i s d -> b i d")).pow(2).mean(-1)

    return f


def test_auxk_function_of_dead_values_named():
    for name, fn in (("sigmoid", torch.sigmoid), ("exp", torch.exp), ("softplus", F.softplus)):
        failure = assert_fails(C.test_auxk_loss, _auxk(fn), f"dead_values_{name}")
        assert name in failure.hint
    assert_passes(C.test_auxk_loss, _auxk(lambda v: v.nan_to_num(neginf=0.0)))
