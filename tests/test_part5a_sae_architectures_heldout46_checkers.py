"""Proofs for part 5a after the fresh46 measurement (round AU). A JumpReLU forward giving every instance instance
0's thresholds (theta_first_instance) or their mean (theta_pooled), no longer read as "only zero entries wrong";
an AuxK dead mask pooled over instances with dead.any(0) (dead_mask_pooled), no longer read as no mask at all.
The round's correct variants pass."""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import solutions.part5a_sae_architectures as S
import tests.part5a_sae_architectures as C
from tests.proving import assert_fails, assert_passes

rect = S.rectangle


def _dec(a, W):
    return einops.einsum(a, W, "b i s, i s d -> b i d")


# ---------------- JumpReLU forward: one row of thresholds for every instance ----------------
def _jf(opt):
    def forward(self, h):
        pre = einops.einsum(h - self.b_dec, self.W_enc, "b i d, i d s -> b i s") + self.b_enc
        theta = self.log_threshold.exp()
        theta = {"first": lambda: theta[0], "mean": lambda: theta.mean(0)}.get(opt, lambda: theta)()
        threshold = theta.expand_as(pre)
        bw = self.cfg.jumprelu_bandwidth
        acts = S.JumpReLU.apply(pre, threshold, bw)
        h_rec = _dec(acts, self.W_dec_normalized) + self.b_dec
        x = pre.detach() if opt == "ok_pre_detached" else pre
        ld = {
            "L_reconstruction": (h_rec - h).pow(2).mean(-1),
            "L_sparsity": S.Heaviside.apply(x, threshold, bw).sum(-1),
        }
        loss = (ld["L_reconstruction"] + self.sparsity_coeff * ld["L_sparsity"]).mean(0).sum()
        return ld, loss, acts, h_rec

    return type("J_" + opt, (S.JumpReLUToySAE,), {"forward": forward})


def test_jumprelu_forward_first_instance_theta():
    failure = assert_fails(C.test_jumprelu_forward, _jf("first"), "theta_first_instance")
    assert "instance 0" in failure.hint


def test_jumprelu_forward_pooled_theta():
    assert_fails(C.test_jumprelu_forward, _jf("mean"), "theta_pooled")


def test_jumprelu_forward_heaviside_pre_detached_passes():
    assert_passes(C.test_jumprelu_forward, _jf("ok_pre_detached"))


# ---------------- AuxK: dead mask pooled over instances ----------------
def _ak(opt):
    def f(pre, residual, dead, W, k_aux):
        d = dead.any(0, keepdim=True).expand_as(dead) if opt == "pooled_any" else dead
        if opt == "ok_gather_dead":
            top = torch.where(dead, pre, pre.min() - 1).topk(k_aux, dim=-1)
            keep = dead.unsqueeze(0).expand_as(pre).gather(-1, top.indices)
            vals = torch.where(keep, top.values, torch.zeros_like(top.values))
        else:
            top = torch.where(d, pre, -torch.inf).topk(k_aux, dim=-1)
            vals = torch.where(top.values.isfinite(), top.values, torch.zeros_like(top.values))
        acts = torch.zeros_like(pre).scatter(-1, top.indices, vals)
        loss = (residual - _dec(acts, W)).pow(2).mean(-1)
        if opt == "zero_without_dead":
            loss = loss * dead.any(-1).to(loss.dtype)
        return loss

    return f


def _ak_no_mask(pre, residual, dead, W, k_aux):
    top = pre.topk(k_aux, dim=-1)
    return (residual - _dec(torch.zeros_like(pre).scatter(-1, top.indices, top.values), W)).pow(2).mean(-1)


def test_auxk_pooled_any():
    failure = assert_fails(C.test_auxk_loss, _ak("pooled_any"), "dead_mask_pooled")
    assert "pooled over instances" in failure.hint


def test_auxk_no_mask_still_named():
    assert_fails(C.test_auxk_loss, _ak_no_mask, "used_live_latents")


def test_auxk_gather_dead_passes():
    assert_passes(C.test_auxk_loss, _ak("ok_gather_dead"))


# ---------------- Gated forward: a bias after the ReLU; L_aux slips ----------------
def _gated(opt):
    def forward(self, h):
        x = h - self.b_dec
        proj = einops.einsum(x, self.W_enc, "b i d, i d s -> b i s")
        gate_pre = proj + self.b_enc
        if opt == "b_mag_outside_relu":
            mag = F.relu(proj * self.r_mag.exp()) + self.b_mag
        else:
            mag = F.relu(proj * self.r_mag.exp() + self.b_mag)
        if opt == "ok_heaviside_detached":
            ind = torch.heaviside(gate_pre.detach(), torch.zeros_like(gate_pre))
        else:
            ind = (gate_pre > 0).to(h.dtype)
        acts_post = ind * mag
        W = self.W_dec_normalized
        h_rec = _dec(acts_post, W) + self.b_dec
        gate_post = F.relu(gate_pre)
        if opt == "aux_norm_over_dsae":
            Wa = self.W_dec.detach()
            Wa = Wa / Wa.norm(dim=1, keepdim=True)
        else:
            Wa = W.detach()
        if opt == "aux_relu_after_decoding":
            via = F.relu(_dec(gate_pre, Wa)) + self.b_dec.detach()
        elif opt == "aux_relu_after_b_dec":
            via = F.relu(_dec(gate_pre, Wa) + self.b_dec.detach())
        else:
            via = _dec(gate_post, Wa) + self.b_dec.detach()
        ld = {
            "L_reconstruction": (h_rec - h).pow(2).mean(-1),
            "L_sparsity": gate_post.sum(-1),
            "L_aux": (via - h).pow(2).mean(-1),
        }
        per = ld["L_reconstruction"] + self.sparsity_coeff * ld["L_sparsity"] + ld["L_aux"]
        return ld, per.mean(0).sum(), acts_post, h_rec

    return type("G_" + opt, (S.GatedToySAE,), {"forward": forward})


def test_gated_b_mag_outside_relu():
    assert_fails(C.test_gated_forward, _gated("b_mag_outside_relu"), "bias_after_relu")


def test_gated_aux_norm_over_dsae():
    assert_fails(C.test_gated_forward, _gated("aux_norm_over_dsae"), "aux_norm_axis")


def test_gated_aux_relu_after_decoding():
    assert_fails(C.test_gated_forward, _gated("aux_relu_after_decoding"), "aux_relu_after_decoding")
    assert_fails(C.test_gated_forward, _gated("aux_relu_after_b_dec"), "aux_relu_after_decoding")


def test_gated_heaviside_detached_passes():
    assert_passes(C.test_gated_forward, _gated("ok_heaviside_detached"))
