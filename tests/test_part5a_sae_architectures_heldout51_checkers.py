"""Held-out round AX (fresh49), part 5a.

* Heaviside with the threshold gradient zeroed where θ ≤ 0 was not caught: the checker now runs Heaviside at negative
  thresholds too (as JumpReLU's) and reads back "∂/∂θ kept only where θ > 0" (code negative_threshold_grad_th).
* JumpReLU ∂/∂θ with the factor |θ| (window at θ) is read back at negative θ.
* TopK keeping pre > kthvalue(d_sae - k) was not caught (no ties at the cut): a probe with latents 3-5 copies of 0-2
  and k = 3 reads back the strict cut that drops both tied copies (code topk_ties).
* JumpReLU SAE loss adding coeff · L_sparsity.detach() was read as "θ gets no gradient from L_sparsity" (misleading):
  a read-back (expected loss gradient minus the term's, and loss_dict's own gradient right) names the detached term
  (code term_detached_in_loss).
* fraction_variance_explained with total.clamp(min=1) was not caught (every total ≥ 1): a probe at scale 1e-3 reads
  back the total the learner divided by (code total_guard).

The correct variants the round found still pass.
"""

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


def _step(grad_th, jump):
    """Heaviside (jump False) or JumpReLU with the reference forward and ∂/∂x, and ∂/∂θ = grad_th(x, θ, ε) · g."""

    class F_(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, th, bw):
            ctx.save_for_backward(x, th)
            ctx.bandwidth = bw
            return x * (x > th).to(x.dtype) if jump else (x > th).to(x.dtype)

        @staticmethod
        def backward(ctx, go):
            x, th = ctx.saved_tensors
            gx = (x > th).to(x.dtype) * go if jump else torch.zeros_like(x)
            return gx, grad_th(x, th, ctx.bandwidth) * go, None

    return F_


# --- wrong ---------------------------------------------------------------------------------------------------------
def test_heaviside_grad_only_positive_theta_caught():
    h = _step(lambda x, th, bw: -rect((x - th) / bw) / bw * (th > 0).to(x.dtype), jump=False)
    err = str(assert_fails(C.test_heaviside, h, "negative_threshold_grad_th"))
    assert "kept only where θ > 0" in err and "read back" in err


def test_jumprelu_abs_theta_factor_named():
    j = _step(lambda x, th, bw: -(th.abs() / bw) * rect((x - th) / bw), jump=True)
    err = str(assert_fails(C.test_jumprelu, j, "negative_threshold_grad_th"))
    assert "factor abs(θ) in place of θ" in err and "read back" in err


def test_fve_total_clamped_at_1_caught():
    def fve(h, r):
        return 1 - (h - r).pow(2).sum((0, 2)) / (h - h.mean(0, keepdim=True)).pow(2).sum((0, 2)).clamp(min=1)

    err = str(assert_fails(C.test_fraction_variance_explained, fve, "total_guard"))
    assert "clamp(min=1)" in err


def test_fve_total_plus_constant_caught():
    def fve(h, r):
        return 1 - (h - r).pow(2).sum((0, 2)) / ((h - h.mean(0, keepdim=True)).pow(2).sum((0, 2)) + 1e-2)

    assert "added to the total" in str(assert_fails(C.test_fraction_variance_explained, fve, "total_guard"))


# --- correct variants ------------------------------------------------------------------------------------------------
def test_heaviside_unscaled_window_passes():
    assert_passes(C.test_heaviside, _step(lambda x, th, bw: -((x - th).abs() < bw / 2).to(x.dtype) / bw, jump=False))


def test_jumprelu_reference_step_passes():
    assert_passes(C.test_jumprelu, _step(lambda x, th, bw: -(th / bw) * rect((x - th) / bw), jump=True))


def test_fve_tiny_eps_passes():
    def fve(h, r):
        return 1 - (h - r).pow(2).sum((0, 2)) / ((h - h.mean(0, keepdim=True)).pow(2).sum((0, 2)) + 1e-12)

    assert_passes(C.test_fraction_variance_explained, fve)


def test_fve_cov_trace_passes():
    def fve(h, r):
        c = h - h.mean(0)
        return 1 - (h - r).pow(2).sum((0, 2)) / torch.einsum("bid,bid->i", c, c)

    assert_passes(C.test_fraction_variance_explained, fve)


def _jumprelu_sae(sparsity):
    """JumpReLUToySAE whose loss adds sparsity(L_sparsity) in place of L_sparsity."""

    def forward(self, h):
        pre = einops.einsum(h - self.b_dec, self.W_enc, "b i d, i d s -> b i s") + self.b_enc
        theta = self.log_threshold.exp().expand_as(pre)
        bw = self.cfg.jumprelu_bandwidth
        acts = S.JumpReLU.apply(pre, theta, bw)
        h_rec = _dec(acts, self.W_dec_normalized) + self.b_dec
        ld = {"L_reconstruction": (h_rec - h).pow(2).mean(-1), "L_sparsity": S.Heaviside.apply(pre, theta, bw).sum(-1)}
        loss = (ld["L_reconstruction"] + self.sparsity_coeff * sparsity(ld["L_sparsity"])).mean(0).sum()
        return ld, loss, acts, h_rec

    return type("J", (S.JumpReLUToySAE,), {"forward": forward})


def test_jumprelu_sparsity_detached_in_loss_named():
    err = str(assert_fails(C.test_jumprelu_forward, _jumprelu_sae(lambda s: s.detach()), "term_detached_in_loss"))
    assert "L_sparsity" in err and "detached copy" in err


def test_jumprelu_sparsity_in_loss_passes():
    assert_passes(C.test_jumprelu_forward, _jumprelu_sae(lambda s: s))


def _topk_sae(keep):
    """TopKToySAE whose acts_post = keep(pre, k) with pre = ReLU((h - b_dec) @ W_enc + b_enc)."""

    def forward(self, h):
        pre = F.relu(einops.einsum(h - self.b_dec, self.W_enc, "b i d, i d s -> b i s") + self.b_enc)
        acts = keep(pre, self.cfg.k)
        h_rec = _dec(acts, self.W_dec_normalized) + self.b_dec
        ld = {"L_reconstruction": (h_rec - h).pow(2).mean(-1), "L_sparsity": (acts > 0).to(h.dtype).sum(-1)}
        return ld, ld["L_reconstruction"].mean(0).sum(), acts, h_rec

    return type("T", (S.TopKToySAE,), {"forward": forward})


def test_topk_kthvalue_strict_named():
    def keep(pre, k):
        kth = pre.kthvalue(pre.shape[-1] - k, dim=-1, keepdim=True).values
        return torch.where(pre > kth, pre, torch.zeros_like(pre))

    err = str(assert_fails(C.test_topk_forward, _topk_sae(keep), "topk_ties"))
    assert "pre > the (k+1)-th largest value" in err and "Read back" in err


def test_topk_ge_kth_still_passes():
    """k + 1 kept at a tie: accepted by the section's proofs (no ties in continuous data)."""

    def keep(pre, k):
        return pre * (pre >= pre.topk(k, dim=-1).values[..., -1:]).to(pre.dtype)

    assert_passes(C.test_topk_forward, _topk_sae(keep))


def test_topk_one_hot_mask_passes():
    def keep(pre, k):
        return pre * F.one_hot(pre.topk(k, dim=-1).indices, pre.shape[-1]).sum(-2).to(pre.dtype)

    assert_passes(C.test_topk_forward, _topk_sae(keep))


def test_topk_scatter_passes():
    def keep(pre, k):
        top = pre.topk(k, dim=-1)
        return torch.zeros_like(pre).scatter(-1, top.indices, top.values)

    assert_passes(C.test_topk_forward, _topk_sae(keep))
