"""Proofs for part 5a after the fresh41 measurement: every metric is also called with n_inst = 1, where a trailing
`.squeeze()` returns a 0-d tensor (squeezed); Heaviside/JumpReLU are probed at thresholds below ε/2, where a
backward reading ReLU(x) moves the window (saved_relu); the JumpReLU SAE has a latent with θ < ε/2, so ReLU(pre)
fed to JumpReLU/Heaviside shows in the threshold's gradient; TopK with b_enc added twice, AuxK's top k_aux over
the flattened batch × d_sae or each latent decoded alone, L0 as L1/L∞, the dead fraction counted from nonzero()'s
example column, and the angular similarity are named. Correct variants (squeeze(-1), torch.where backward) pass."""

from __future__ import annotations

import math

import einops
import torch
import torch.nn.functional as F

import solutions.part5a_sae_architectures as S
import tests.part5a_sae_architectures as C
from tests.proving import assert_fails, assert_passes


def _rect(u):
    return (u.abs() < 0.5).to(u.dtype)


def _step(kind: str, save_relu: bool):
    class Step(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, threshold, bandwidth):
            ctx.save_for_backward(F.relu(x) if save_relu else x, threshold)
            ctx.bandwidth = bandwidth
            on = (x > threshold).to(x.dtype)
            return on if kind == "heaviside" else x * on

        @staticmethod
        def backward(ctx, g):
            x, th = ctx.saved_tensors
            k = _rect((x - th) / ctx.bandwidth) / ctx.bandwidth
            if kind == "heaviside":
                return torch.zeros_like(x), -k * g, None
            return (x > th).to(x.dtype) * g, -th * k * g, None

    return Step


def test_squeezed_metrics_are_named():
    l0 = lambda a: (a != 0).to(a.dtype).sum(-1, keepdim=True).mean(0).squeeze()
    failure = assert_fails(C.test_l0_norm, l0, "squeezed")
    assert "n_inst = 1" in failure.message and ".squeeze()" in failure.hint
    fve = lambda h, hr: 1 - (h - hr).pow(2).sum((0, 2), keepdim=True) / (h - h.mean(0)).pow(2).sum((0, 2), True)
    assert_fails(C.test_fraction_variance_explained, lambda h, hr: fve(h, hr).squeeze(), "squeezed")
    dead = lambda a: (a == 0).all(0, keepdim=True).to(a.dtype).mean(-1).squeeze()
    assert_fails(C.test_dead_latent_fraction, dead, "squeezed")
    assert_passes(C.test_l0_norm, lambda a: (a != 0).to(a.dtype).sum(-1, keepdim=True).mean(0).squeeze(-1))
    assert_passes(C.test_fraction_variance_explained, lambda h, hr: fve(h, hr).squeeze((0, 2)))


def test_saved_relu_is_named_for_both_step_functions():
    failure = assert_fails(C.test_heaviside, _step("heaviside", True), "saved_relu")
    assert "θ < ε/2" in failure.message and "ReLU(x)" in failure.hint
    assert_fails(C.test_jumprelu, _step("jumprelu", True), "saved_relu")
    assert_passes(C.test_heaviside, _step("heaviside", False))
    assert_passes(C.test_jumprelu, _step("jumprelu", False))


def _jumprelu_forward(relu_pre: bool):
    def forward(self, h):
        pre = einops.einsum(h - self.b_dec, self.W_enc, "b i d, i d s -> b i s") + self.b_enc
        pre = F.relu(pre) if relu_pre else pre
        th, bw = self.log_threshold.exp(), self.cfg.jumprelu_bandwidth
        acts = S.JumpReLU.apply(pre, th.expand_as(pre), bw)
        h_rec = einops.einsum(acts, self.W_dec_normalized, "b i s, i s d -> b i d") + self.b_dec
        d = {"L_reconstruction": (h_rec - h).pow(2).mean(-1), "L_sparsity": S.Heaviside.apply(pre, th, bw).sum(-1)}
        loss = (d["L_reconstruction"] + self.sparsity_coeff * d["L_sparsity"]).mean(0).sum()
        return d, loss, acts, h_rec

    return type("JRF", (S.JumpReLUToySAE,), {"forward": forward})


def test_relu_pre_shows_in_the_threshold_gradient():
    failure = assert_fails(C.test_jumprelu_forward, _jumprelu_forward(True), "threshold_grad")
    assert "ReLU" in failure.hint and "ε/2" in failure.hint
    assert_passes(C.test_jumprelu_forward, _jumprelu_forward(False))


def test_topk_b_enc_twice_is_named():
    def forward(self, h):
        pre = F.relu(einops.einsum(h - self.b_dec, self.W_enc, "b i d, i d s -> b i s") + 2 * self.b_enc)
        top = pre.topk(self.cfg.k, dim=-1)
        acts = torch.zeros_like(pre).scatter(-1, top.indices, top.values)
        h_rec = einops.einsum(acts, self.W_dec_normalized, "b i s, i s d -> b i d") + self.b_dec
        d = {"L_reconstruction": (h_rec - h).pow(2).mean(-1), "L_sparsity": (acts != 0).to(h.dtype).sum(-1)}
        return d, d["L_reconstruction"].mean(0).sum(), acts, h_rec

    assert_fails(C.test_topk_forward, type("TK", (S.TopKToySAE,), {"forward": forward}), "b_enc_twice")


def _auxk(mode: str):
    def f(pre, residual, dead, Wd, k_aux):
        m = pre.masked_fill(~dead, -torch.inf)
        if mode == "flat":
            b, i, s = m.shape
            mf = m.permute(1, 0, 2).reshape(i, b * s)
            t = mf.topk(k_aux, dim=-1)
            v = torch.where(torch.isneginf(t.values), torch.zeros_like(t.values), t.values)
            acts = torch.zeros_like(mf).scatter(-1, t.indices, v).reshape(i, b, s).permute(1, 0, 2)
            return (residual - einops.einsum(acts, Wd, "b i s, i s d -> b i d")).pow(2).mean(-1)
        t = m.topk(k_aux, dim=-1)
        v = torch.where(torch.isneginf(t.values), torch.zeros_like(t.values), t.values)
        rows = Wd[torch.arange(Wd.shape[0])[None, :, None], t.indices]
        return (residual[:, :, None, :] - v[..., None] * rows).pow(2).mean(-1).mean(-1)

    return f


def test_auxk_readings_are_named():
    assert "flattened" in assert_fails(C.test_auxk_loss, _auxk("flat"), "auxk_flattened").hint
    assert_fails(C.test_auxk_loss, _auxk("alone"), "auxk_each_alone")


def test_metric_readings_are_named():
    ratio = lambda a: (a.abs().sum(-1) / a.abs().amax(-1).clamp(min=1e-12)).mean(0)
    assert_fails(C.test_l0_norm, ratio, "l1_linf_ratio")

    def dead_loop(a):
        alive = [a[:, i].nonzero()[:, 0].unique().numel() for i in range(a.shape[1])]
        return torch.tensor([1 - n / a.shape[-1] for n in alive], dtype=a.dtype)

    assert "column 0 is the example" in assert_fails(C.test_dead_latent_fraction, dead_loop, "example_column").hint

    def angular(Wf, Wd):
        cos = einops.einsum(F.normalize(Wd, dim=-1), F.normalize(Wf, dim=1), "i s d, i d f -> i s f").amax(1)
        return 1 - torch.arccos(cos.clamp(-1, 1)) / math.pi

    assert_fails(C.test_feature_recovery, angular, "angular")
