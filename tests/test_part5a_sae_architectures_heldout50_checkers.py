"""Held-out round AW (fresh48), part 5a. Three new mistakes were caught but not named (or misnamed):

* Heaviside forward `torch.heaviside(x - θ, θ)`: θ at the ties x == θ. It read as "only axis 1 59 is wrong"; it now
  says the output is wrong only at the ties and reads back torch.heaviside's `values` argument (code tie_value).
* JumpReLU forward `x * torch.heaviside(x - θ, 0.5)`: x/2 at the ties. It read as a smooth step (a sigmoid or ramp
  in forward); the tie reading runs first and reads back the value 0.5 (tie_value).
* dead_latent_fraction `(acts.max(0)[1] == 0)`: the argmax position compared with 0 instead of the max value. A
  catalogue entry reads it back (max_indices).

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


def _heaviside(step):
    """Heaviside with the reference backward and forward step(x, θ)."""

    class H(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, th, bw):
            ctx.save_for_backward(x, th)
            ctx.bandwidth = bw
            return step(x, th)

        @staticmethod
        def backward(ctx, go):
            x, th = ctx.saved_tensors
            return torch.zeros_like(x), -rect((x - th) / ctx.bandwidth) / ctx.bandwidth * go, None

    return H


def _jumprelu(step, strict_mask=True):
    """JumpReLU with forward step(x, θ) and the reference backward (grad_x mask x >= θ when not strict_mask)."""

    class J(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, th, bw):
            ctx.save_for_backward(x, th)
            ctx.bandwidth = bw
            return step(x, th)

        @staticmethod
        def backward(ctx, go):
            x, th = ctx.saved_tensors
            bw = ctx.bandwidth
            mask = (x > th) if strict_mask else (x >= th)
            return mask.to(x.dtype) * go, -(th / bw) * rect((x - th) / bw) * go, None

    return J


# --- wrong: the value at the tie x == θ --------------------------------------------------------------------------
def test_heaviside_values_theta_named():
    err = assert_fails(C.test_heaviside, _heaviside(lambda x, th: torch.heaviside(x - th, th)), "tie_value")
    assert "x == θ" in str(err) and "torch.heaviside(x - θ, threshold) reproduces" in str(err)


def test_heaviside_half_at_tie_named():
    half = _heaviside(lambda x, th: torch.heaviside(x - th, torch.full_like(x, 0.5)))
    assert "torch.heaviside(x - θ, 0.5)" in str(assert_fails(C.test_heaviside, half, "tie_value"))


def test_jumprelu_half_at_tie_named_not_smooth():
    j = _jumprelu(lambda x, th: x * torch.heaviside(x - th, torch.tensor(0.5, dtype=x.dtype)))
    err = str(assert_fails(C.test_jumprelu, j, "tie_value"))
    assert "x * torch.heaviside(x - θ, 0.5)" in err and "sigmoid" not in err


def test_jumprelu_tie_value_without_readback_is_observed():
    """0.25 at the ties: x times no constant and not θ: the observation (only the ties are wrong), no cause named."""
    j = _jumprelu(lambda x, th: x * (x > th).to(x.dtype) + 0.25 * (x == th).to(x.dtype))
    err = str(assert_fails(C.test_jumprelu, j, "tie_value"))
    assert "only at the ties x == θ" in err and "reproduces" not in err


def test_jumprelu_backward_mask_nonstrict_still_named():
    j = _jumprelu(lambda x, th: x * (x > th).to(x.dtype), strict_mask=False)
    assert_fails(C.test_jumprelu, j, "one_change")


# --- wrong: an index where a value belongs -------------------------------------------------------------------------
def test_dead_max_indices_named():
    err = assert_fails(C.test_dead_latent_fraction, lambda a: (a.max(0)[1] == 0).to(a.dtype).mean(-1), "max_indices")
    assert "(values, indices)" in str(err)


def test_dead_argmax_named():
    assert_fails(C.test_dead_latent_fraction, lambda a: (a.argmax(0) == 0).to(a.dtype).mean(-1), "max_indices")


def test_l0_over_n_inst_still_named():
    assert_fails(C.test_l0_norm, lambda a: (a != 0).to(a.dtype).sum(-1).sum(0) / a.shape[1], "scale")


# --- correct variants ------------------------------------------------------------------------------------------------
def test_heaviside_zero_at_tie_passes():
    assert_passes(C.test_heaviside, _heaviside(lambda x, th: torch.heaviside(x - th, torch.zeros_like(x))))


def test_heaviside_sub_gt_passes():
    assert_passes(C.test_heaviside, _heaviside(lambda x, th: torch.gt(x - th, 0).type_as(x)))


def test_jumprelu_where_passes():
    assert_passes(C.test_jumprelu, _jumprelu(lambda x, th: torch.where(x > th, x, torch.zeros_like(x))))


def test_jumprelu_heaviside_zero_passes():
    assert_passes(C.test_jumprelu, _jumprelu(lambda x, th: x * torch.heaviside(x - th, torch.zeros_like(x))))


def test_dead_amax_le_zero_passes():
    assert_passes(C.test_dead_latent_fraction, lambda a: (a.amax(0) <= 0).to(a.dtype).sum(-1) / a.shape[-1])


def test_dead_max_values_passes():
    assert_passes(C.test_dead_latent_fraction, lambda a: (a.max(0)[0] == 0).to(a.dtype).mean(-1))


def test_l0_pooled_mean_times_dsae_passes():
    assert_passes(C.test_l0_norm, lambda a: (a != 0).to(a.dtype).mean((0, 2)) * a.shape[-1])


def test_fve_biased_var_times_batch_passes():
    def fve(h, hr):
        tot = h.var(dim=0, unbiased=False).sum(-1) * h.shape[0]
        return 1 - F.mse_loss(hr, h, reduction="none").sum((0, 2)) / tot

    assert_passes(C.test_fraction_variance_explained, fve)


def test_feature_recovery_cosine_similarity_passes():
    def fr(Wf, Wd):
        return F.cosine_similarity(Wd[:, :, None, :], Wf.transpose(1, 2)[:, None, :, :], dim=-1, eps=1e-8).amax(1)

    assert_passes(C.test_feature_recovery, fr)


def test_auxk_k_clamped_to_max_dead_passes():
    def auxk(pre, residual, dead, W, k_aux):
        k = max(1, min(k_aux, int(dead.sum(-1).max())))
        top = torch.where(dead, pre, -torch.inf).topk(k, dim=-1)
        vals = top.values.masked_fill(top.values == -torch.inf, 0.0)
        acts = torch.zeros_like(pre).scatter(-1, top.indices, vals)
        return (residual - _dec(acts, W)).pow(2).mean(-1)

    assert_passes(C.test_auxk_loss, auxk)


def test_auxk_argsort_mask_passes():
    def auxk(pre, residual, dead, W, k_aux):
        keyed = pre.masked_fill(~dead, float("-inf"))
        order = keyed.argsort(dim=-1, descending=True)[..., :k_aux]
        chosen = torch.zeros_like(pre, dtype=torch.bool).scatter(-1, order, True) & dead
        acts = torch.where(chosen, pre, torch.zeros_like(pre))
        return ((residual - _dec(acts, W)) ** 2).mean(-1)

    assert_passes(C.test_auxk_loss, auxk)


def test_topk_count_from_top_values_passes():
    def forward(self, h):
        pre = F.relu(einops.einsum(h - self.b_dec, self.W_enc, "b i d, i d s -> b i s") + self.b_enc)
        t = pre.topk(self.cfg.k, dim=-1)
        acts = torch.zeros_like(pre).scatter(-1, t.indices, t.values)
        h_rec = _dec(acts, self.W_dec_normalized) + self.b_dec
        Lr = (h_rec - h).pow(2).mean(-1)
        losses = {"L_reconstruction": Lr, "L_sparsity": t.values.gt(0).to(h.dtype).sum(-1)}
        return losses, Lr.mean(0).sum(), acts, h_rec

    assert_passes(C.test_topk_forward, type("TopK", (S.TopKToySAE,), {"forward": forward}))


def test_gated_rec_vs_x_passes():
    def forward(self, h):
        x = h - self.b_dec
        proj = einops.einsum(x, self.W_enc, "b i d, i d s -> b i s")
        gate_pre = proj + self.b_enc
        acts = (gate_pre > 0).to(h.dtype) * F.relu(proj * self.r_mag.exp() + self.b_mag)
        W = self.W_dec_normalized
        gate_post = F.relu(gate_pre)
        h_rec = _dec(acts, W) + self.b_dec
        La = (_dec(gate_post, W.detach()) + self.b_dec.detach() - h).pow(2).mean(-1)
        ld = {"L_reconstruction": (_dec(acts, W) - x).pow(2).mean(-1), "L_sparsity": gate_post.sum(-1), "L_aux": La}
        per = ld["L_reconstruction"] + self.sparsity_coeff * ld["L_sparsity"] + ld["L_aux"]
        return ld, per.mean(0).sum(), acts, h_rec

    assert_passes(C.test_gated_forward, type("Gated", (S.GatedToySAE,), {"forward": forward}))
