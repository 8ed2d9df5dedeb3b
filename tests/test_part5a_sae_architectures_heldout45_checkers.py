"""Proofs for part 5a after the fresh45 measurement. A θ-gradient window with only one half of the rectangle
(window_half, Heaviside and JumpReLU); a TopK forward whose k is lowered to the batch's fewest positive
pre-activations (k_from_data, no longer read as a k ignored); an AuxK k lowered to one k' < k_aux in every instance
(k_aux_lowered); feature_recovery squeezing its size-1 inst or feats axis (squeezed). Correct variants pass: an
int64 L_sparsity from count_nonzero, a float32 dead fraction of float64 acts (the contract accepts both), and the
round's other correct forms."""

from __future__ import annotations

import math

import einops
import pytest
import torch
import torch.nn.functional as F

import solutions.part5a_sae_architectures as S
import tests.part5a_sae_architectures as C
from tests.proving import assert_fails, assert_passes

rect = S.rectangle


# ---------------- Heaviside / JumpReLU: half a window ----------------
def _step(kind: str, mode: str = ""):
    class Step(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, th, bw):
            ctx.save_for_backward(x - th if mode == "saved_diff" else x, th)
            ctx.bandwidth = bw
            if kind == "jumprelu":
                return torch.where(x > th, x, torch.zeros_like(x)) if mode == "where" else x * (x > th).to(x.dtype)
            return (x > th).to(x.dtype)

        @staticmethod
        def backward(ctx, go):
            first, th = ctx.saved_tensors
            bw = ctx.bandwidth
            if mode == "saved_diff":
                return None, -rect(first / bw) / bw * go, None
            x = first
            u = (x - th) / bw
            window = {
                "upper": ((u >= 0) & (u < 0.5)).to(x.dtype),
                "lower": ((u > -0.5) & (u <= 0)).to(x.dtype),
            }.get(mode, rect(u))
            factor = th if kind == "jumprelu" else 1.0
            gx = (x > th).to(x.dtype) * go if kind == "jumprelu" else torch.zeros_like(x)
            gth = -(factor / bw) * window * go
            return (gx, gth, None, None) if mode == "four_grads" else (gx, gth, None)

    return Step


@pytest.mark.parametrize("side", ["upper", "lower"])
def test_step_half_window(side):
    failure = assert_fails(C.test_heaviside, _step("heaviside", side), "window_half")
    assert f"the {side} half" in failure.hint
    assert_fails(C.test_jumprelu, _step("jumprelu", side), "window_half")


def test_step_correct_variants():
    assert_passes(C.test_heaviside, _step("heaviside", "saved_diff"))
    assert_passes(C.test_jumprelu, _step("jumprelu", "where"))
    assert_passes(C.test_jumprelu, _step("jumprelu", "four_grads"))  # autograd accepts an extra trailing None


# ---------------- TopK: k lowered from the data ----------------
def _topk(mode: str):
    def forward(self, h):
        raw = einops.einsum(h - self.b_dec, self.W_enc, "b i d, i d s -> b i s") + self.b_enc
        pre = F.relu(raw)
        k = self.cfg.k
        if mode == "k_min_positive":
            k = max(1, min(k, int((pre > 0).sum(-1).min())))
        if mode == "topk_then_relu":
            t = raw.topk(k, dim=-1)
            acts = torch.zeros_like(raw).scatter(-1, t.indices, F.relu(t.values))
        else:
            t = pre.topk(k, dim=-1)
            acts = torch.zeros_like(pre).scatter(-1, t.indices, t.values)
        h_rec = einops.einsum(acts, self.W_dec_normalized, "b i s, i s d -> b i d") + self.b_dec
        Ls = acts.count_nonzero(-1) if mode == "count_nonzero" else (acts > 0).to(h.dtype).sum(-1)
        Lr = (h_rec - h).pow(2).mean(-1)
        return {"L_reconstruction": Lr, "L_sparsity": Ls}, Lr.mean(0).sum(), acts, h_rec

    return type("T_" + mode, (S.TopKToySAE,), {"forward": forward})


def test_topk_k_from_data():
    failure = assert_fails(C.test_topk_forward, _topk("k_min_positive"), "k_from_data")
    assert "fewest positive" in failure.hint
    assert_passes(C.test_topk_forward, _topk("count_nonzero"))  # int64 L_sparsity: the contract accepts it
    assert_passes(C.test_topk_forward, _topk("topk_then_relu"))


# ---------------- AuxK: one k' < k_aux in every instance ----------------
def _auxk(mode: str):
    def f(pre, residual, dead, W, k_aux):
        kk = {"k_min_dead": max(1, min(k_aux, int(dead.sum(-1).min()))), "k_minus_one": k_aux - 1}.get(mode, k_aux)
        top = torch.where(dead, pre, torch.full_like(pre, -math.inf)).topk(kk, dim=-1)
        if mode == "nan_to_num":
            vals = torch.nan_to_num(top.values, neginf=0.0)
        else:
            vals = torch.where(top.values.isfinite(), top.values, torch.zeros_like(top.values))
        acts = torch.zeros_like(pre).scatter(-1, top.indices, vals)
        return (residual - einops.einsum(acts, W, "b i s, i s d -> b i d")).pow(2).mean(-1)

    return f


def test_auxk_k_lowered():
    failure = assert_fails(C.test_auxk_loss, _auxk("k_min_dead"), "k_aux_lowered")
    assert "fewest dead latents" in failure.hint
    # k_aux - 1 = 2 = instance 0's dead count on the checker's input: the two readings are listed together
    failure = assert_fails(C.test_auxk_loss, _auxk("k_minus_one"), "k_from_instance0")
    assert "topk(k_aux - 1)" in failure.hint
    assert_passes(C.test_auxk_loss, _auxk("nan_to_num"))


# ---------------- feature_recovery: size-1 axes ----------------
def _recovery(mode: str):
    def f(Wf, Wd):
        Wf = Wf / (Wf.norm(dim=1, keepdim=True) + 1e-8)
        Wd = Wd / (Wd.norm(dim=-1, keepdim=True) + 1e-8)
        cos = einops.einsum(Wd, Wf, "i s d, i d f -> i s f")
        if mode == "squeeze_all":
            return cos.max(1, keepdim=True).values.squeeze()
        if mode == "squeeze_last":
            return cos.max(1).values.squeeze(-1)
        return cos.max(1, keepdim=True).values.squeeze(1)

    return f


def test_recovery_size_one_axes():
    failure = assert_fails(C.test_feature_recovery, _recovery("squeeze_all"), "squeezed")
    assert "n_inst = 1" in str(failure)
    failure = assert_fails(C.test_feature_recovery, _recovery("squeeze_last"), "squeezed")
    assert "n_feats = 1" in str(failure)
    assert_passes(C.test_feature_recovery, _recovery("squeeze_one"))


# ---------------- metrics: the round's correct forms ----------------
def test_metric_correct_variants():
    # a float32 fraction of float64 acts (the .float() of a 0/1 mask): the contract accepts it
    assert_passes(C.test_dead_latent_fraction, lambda a: (a == 0).all(0).sum(-1) / a.shape[-1])
    assert_passes(
        C.test_fraction_variance_explained,
        lambda h, hr: 1 - (h - hr).pow(2).mean(0).sum(-1) / h.var(0, unbiased=False).sum(-1),
    )


# ---------------- Gated / JumpReLU forwards: the round's correct forms ----------------
def _gated(mode: str):
    def forward(self, h):
        x = h - self.b_dec
        proj = einops.einsum(x, self.W_enc, "b i d, i d s -> b i s")
        gate_pre = proj + self.b_enc
        mag_pre = proj * self.r_mag.exp() + self.b_mag
        acts = torch.where(gate_pre > 0, mag_pre.clamp(min=0), torch.zeros_like(mag_pre))
        W = self.W_dec_normalized
        h_rec = einops.einsum(acts, W, "b i s, i s d -> b i d") + self.b_dec
        gate_post = F.relu(gate_pre)
        via = einops.einsum(gate_post, W.detach(), "b i s, i s d -> b i d")
        if mode == "centred_target":
            L_aux = (via - (h - self.b_dec.detach())).pow(2).mean(-1)
        else:
            L_aux = (via + self.b_dec.detach() - h).pow(2).mean(-1)
        ld = {"L_reconstruction": (h_rec - h).pow(2).mean(-1), "L_sparsity": gate_post.sum(-1), "L_aux": L_aux}
        per = ld["L_reconstruction"] + self.sparsity_coeff * ld["L_sparsity"] + ld["L_aux"]
        return ld, per.sum(1).mean(), acts, h_rec

    return type("G_" + mode, (S.GatedToySAE,), {"forward": forward})


def _jumprelu_unsqueezed(self, h):
    pre = einops.einsum(h - self.b_dec, self.W_enc, "b i d, i d s -> b i s") + self.b_enc
    threshold = self.log_threshold.exp().unsqueeze(0)  # autograd reduces the broadcast θ's gradient
    bw = self.cfg.jumprelu_bandwidth
    acts = S.JumpReLU.apply(pre, threshold, bw)
    h_rec = einops.einsum(acts, self.W_dec_normalized, "b i s, i s d -> b i d") + self.b_dec
    ld = {"L_reconstruction": (h_rec - h).pow(2).mean(-1), "L_sparsity": S.Heaviside.apply(pre, threshold, bw).sum(-1)}
    loss = (ld["L_reconstruction"] + self.sparsity_coeff * ld["L_sparsity"]).mean(0).sum()
    return ld, loss, acts, h_rec


def test_forward_correct_variants():
    assert_passes(C.test_gated_forward, _gated("where_clamp"))
    assert_passes(C.test_gated_forward, _gated("centred_target"))
    assert_passes(C.test_jumprelu_forward, type("J", (S.JumpReLUToySAE,), {"forward": _jumprelu_unsqueezed}))
