"""Held-out round AZ (fresh53), part 5a: what the round's unnamed mistakes are now named as, and its correct variants.

* An error loss reduced over d_in otherwise than by the mean of its squares: the Gated SAE's L_aux or
  L_reconstruction, the JumpReLU and TopK SAEs' L_reconstruction as e.norm(dim=-1) (error_norm), L_aux as
  e.abs().sum(-1) (error_l1_sum) or e.abs().mean(-1) (error_l1_mean): each was "differs" with the formula restated.
* TopK decoding the top-k values of pre before the ReLU, the ReLU applied to acts_post only afterwards
  (decoded_before_relu), and the indices sorted before the scatter, so the right values land on the wrong latents
  (values_misplaced): each was "differs" with the formula restated.
* AuxK ranking the dead latents by ReLU(pre) (every negative pre ties at 0) while keeping pre's own values
  (ranked_after_relu): was "differs" with an instance pattern.
* The round's correct variants (torch.where and a folded W_mag in the Gated SAE, torch.heaviside with None for
  grad_x, saved boolean masks in JumpReLU, a repeated θ with F.mse_loss, top-k by kthvalue or a boolean mask, AuxK
  with a loop over instances or masked_fill, L0 as a sum of signs, the FVE total as Σh² - nΣmean², dead latents by
  amax, recovery by F.cosine_similarity or a transposed matmul) pass.
"""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import solutions.part5a_sae_architectures as A
import tests.part5a_sae_architectures as C
from tests.proving import assert_fails, assert_passes


def _dec(a, W):
    return einops.einsum(a, W, "b i s, i s d -> b i d")


def _gated(rec=None, aux=None):
    class Gated(A.GatedToySAE):
        def forward(self, h):
            d, _, acts, h_rec = A.GatedToySAE.forward(self, h)
            gate = F.relu(einops.einsum(h - self.b_dec, self.W_enc, "b i d, i d s -> b i s") + self.b_enc)
            via = _dec(gate, self.W_dec_normalized.detach()) + self.b_dec.detach()
            d = d | ({"L_reconstruction": rec(h_rec - h)} if rec else {}) | ({"L_aux": aux(via - h)} if aux else {})
            per_example = d["L_reconstruction"] + self.sparsity_coeff * d["L_sparsity"] + d["L_aux"]
            return d, per_example.mean(0).sum(), acts, h_rec

    return Gated


def _jump_rec_norm():
    class Jump(A.JumpReLUToySAE):
        def forward(self, h):
            d, _, acts, h_rec = A.JumpReLUToySAE.forward(self, h)
            d = d | {"L_reconstruction": (h_rec - h).norm(dim=-1)}
            return d, (d["L_reconstruction"] + self.sparsity_coeff * d["L_sparsity"]).mean(0).sum(), acts, h_rec

    return Jump


def _topk(mode):
    class TopK(A.TopKToySAE):
        def forward(self, h):
            pre = einops.einsum(h - self.b_dec, self.W_enc, "b i d, i d s -> b i s") + self.b_enc
            relu = F.relu(pre)
            top = relu.topk(self.cfg.k, dim=-1)
            if mode == "sorted":
                acts = torch.zeros_like(relu).scatter(-1, top.indices.sort(-1).values, top.values)
            elif mode == "relu_late":
                raw = pre.topk(self.cfg.k, dim=-1)
                acts = torch.zeros_like(pre).scatter(-1, raw.indices, raw.values)
            elif mode == "kthvalue":
                kth = relu.kthvalue(relu.shape[-1] - self.cfg.k + 1, dim=-1, keepdim=True).values
                acts = torch.where(relu >= kth, relu, torch.zeros_like(relu))
            elif mode == "mask":
                mask = torch.zeros_like(relu, dtype=torch.bool).scatter(-1, pre.topk(self.cfg.k, dim=-1).indices, True)
                acts = relu * mask
            else:
                acts = torch.zeros_like(relu).scatter(-1, top.indices, top.values)
            h_rec = _dec(acts, self.W_dec_normalized) + self.b_dec
            acts = F.relu(acts)
            rec = (h_rec - h).norm(dim=-1) if mode == "norm" else (h_rec - h).pow(2).mean(-1)
            d = {"L_reconstruction": rec, "L_sparsity": (acts > 0).to(h.dtype).sum(-1)}
            return d, rec.mean(0).sum(), acts, h_rec

    return TopK


def test_error_norm_named():
    for key, impl in [
        ("L_aux", _gated(aux=lambda e: e.norm(dim=-1))),
        ("L_reconstruction", _gated(rec=lambda e: e.norm(dim=-1))),
    ]:
        err = str(assert_fails(C.test_gated_forward, impl, "error_norm"))
        assert key in err and "norm" in err
    assert "norm" in str(assert_fails(C.test_jumprelu_forward, _jump_rec_norm(), "error_norm"))
    assert "norm" in str(assert_fails(C.test_topk_forward, _topk("norm"), "error_norm"))


def test_aux_l1_named():
    assert_fails(C.test_gated_forward, _gated(aux=lambda e: e.abs().sum(-1)), "error_l1_sum")
    assert_fails(C.test_gated_forward, _gated(aux=lambda e: e.abs().mean(-1)), "error_l1_mean")


def test_topk_relu_after_decoding_named():
    err = str(assert_fails(C.test_topk_forward, _topk("relu_late"), "decoded_before_relu"))
    assert "before the ReLU" in err


def test_topk_sorted_indices_named():
    err = str(assert_fails(C.test_topk_forward, _topk("sorted"), "values_misplaced"))
    assert "wrong latents" in err


def _auxk_ranked_on_relu(pre, residual, dead, W, k_aux):
    idx = torch.where(dead, pre.relu(), -torch.inf).topk(k_aux, dim=-1).indices
    vals = torch.where(dead.expand_as(pre).gather(-1, idx), pre.gather(-1, idx), 0.0)
    return (residual - _dec(torch.zeros_like(pre).scatter(-1, idx, vals), W)).pow(2).mean(-1)


def test_auxk_ranked_after_relu_named():
    err = str(assert_fails(C.test_auxk_loss, _auxk_ranked_on_relu, "ranked_after_relu"))
    assert "ReLU(pre)" in err


def test_topk_correct_variants_pass():
    for mode in ("kthvalue", "mask"):
        assert_passes(C.test_topk_forward, _topk(mode))


class _GatedWhere(A.GatedToySAE):
    def forward(self, h):
        x = h - self.b_dec
        gate_pre = torch.einsum("bid,ids->bis", x, self.W_enc) + self.b_enc
        mag_pre = torch.einsum("bid,ids->bis", x, self.W_enc * self.r_mag.exp()[:, None, :]) + self.b_mag
        acts = torch.where(gate_pre > 0, mag_pre.clamp(min=0), torch.zeros_like(mag_pre))
        W = self.W_dec / self.W_dec.norm(dim=-1, keepdim=True)
        h_rec = torch.einsum("bis,isd->bid", acts, W) + self.b_dec
        gate = gate_pre.clamp(min=0)
        via = torch.einsum("bis,isd->bid", gate, W.detach()) + self.b_dec.detach()
        rec, aux = ((h_rec - h) ** 2).sum(-1) / h.shape[-1], ((via - h) ** 2).sum(-1) / h.shape[-1]
        total = rec + self.sparsity_coeff * gate.abs().sum(-1) + aux
        loss = sum(total[:, i].mean() for i in range(h.shape[1]))
        return {"L_reconstruction": rec, "L_sparsity": gate.abs().sum(-1), "L_aux": aux}, loss, acts, h_rec


class _JumpRepeat(A.JumpReLUToySAE):
    def forward(self, h):
        pre = torch.einsum("bid,ids->bis", h - self.b_dec, self.W_enc) + self.b_enc
        th = torch.exp(self.log_threshold).unsqueeze(0).repeat(h.shape[0], 1, 1)
        bw = self.cfg.jumprelu_bandwidth
        acts = A.JumpReLU.apply(pre, th, bw)
        h_rec = torch.einsum("bis,isd->bid", acts, F.normalize(self.W_dec, dim=-1)) + self.b_dec
        rec = F.mse_loss(h_rec, h, reduction="none").mean(-1)
        l0 = A.Heaviside.apply(pre, th, bw).sum(-1)
        return {"L_reconstruction": rec, "L_sparsity": l0}, (rec + self.sparsity_coeff * l0).sum(1).mean(), acts, h_rec


class _HeavisideNone(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, threshold, bandwidth):
        ctx.save_for_backward(x - threshold)
        ctx.bw = bandwidth
        return torch.heaviside(x - threshold, torch.zeros((), dtype=x.dtype, device=x.device))

    @staticmethod
    def backward(ctx, g):
        (d,) = ctx.saved_tensors
        inside = (d > -ctx.bw / 2) & (d < ctx.bw / 2)
        return None, torch.where(inside, -g / ctx.bw, torch.zeros_like(g)), None


class _JumpMasks(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, threshold, bandwidth):
        mask = x > threshold
        ctx.save_for_backward(mask, threshold, (x - threshold).abs() * 2 < bandwidth)
        ctx.bw = bandwidth
        return torch.where(mask, x, torch.zeros_like(x))

    @staticmethod
    def backward(ctx, g):
        mask, th, inside = ctx.saved_tensors
        zero = torch.zeros_like(g)
        return torch.where(mask, g, zero), torch.where(inside, -th * g / ctx.bw, zero), None


def _auxk_loop(pre, residual, dead, W, k_aux):
    acts = torch.zeros_like(pre)
    for i in range(pre.shape[1]):
        idx = dead[i].nonzero().flatten()
        if len(idx):
            v, j = pre[:, i, idx].topk(min(k_aux, len(idx)), dim=-1)
            acts[:, i] = acts[:, i].scatter(-1, idx[j], v)
    return ((residual - torch.einsum("bis,isd->bid", acts, W)) ** 2).mean(-1)


def _auxk_masked_fill(pre, residual, dead, W, k_aux):
    top = pre.masked_fill(~dead, float("-inf")).topk(k_aux, dim=-1)
    vals = top.values.masked_fill(top.values == float("-inf"), 0)
    acts = torch.zeros_like(pre).scatter_(-1, top.indices, vals)
    return F.mse_loss(torch.einsum("bis,isd->bid", acts, W), residual, reduction="none").mean(-1)


def _fve_moments(h, r):
    total = (h**2).sum((0, 2)) - h.shape[0] * (h.mean(0) ** 2).sum(-1)
    return 1 - ((h - r) ** 2).sum((0, 2)) / total


def _recovery_cos(Wf, Wd):
    return F.cosine_similarity(Wd[:, :, None, :], Wf.transpose(1, 2)[:, None, :, :], dim=-1).max(1).values


def _recovery_matmul(Wf, Wd):
    return (F.normalize(Wf, dim=1).transpose(1, 2) @ F.normalize(Wd, dim=-1).transpose(1, 2)).amax(-1)


def test_round_correct_variants_pass():
    assert_passes(C.test_gated_forward, _GatedWhere)
    assert_passes(C.test_jumprelu_forward, _JumpRepeat)
    assert_passes(C.test_heaviside, _HeavisideNone)
    assert_passes(C.test_jumprelu, _JumpMasks)
    assert_passes(C.test_auxk_loss, _auxk_loop)
    assert_passes(C.test_auxk_loss, _auxk_masked_fill)
    assert_passes(C.test_l0_norm, lambda a: a.sign().sum(-1).mean(0))
    assert_passes(C.test_fraction_variance_explained, _fve_moments)
    assert_passes(C.test_dead_latent_fraction, lambda a: (a.amax(0) == 0).to(a.dtype).mean(-1))
    assert_passes(C.test_feature_recovery, _recovery_cos)
    assert_passes(C.test_feature_recovery, _recovery_matmul)
