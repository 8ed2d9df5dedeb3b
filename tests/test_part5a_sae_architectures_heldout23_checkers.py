"""Proofs for part 5a after the fresh42 measurement: fve, auxk_loss and feature_recovery are also called on
float64 inputs (l0/dead counts may be float32); a float32 buffer or .float() inside is float64_inputs, named only
when the float32 values are right, so a values mistake keeps its own name. The threshold gradient is read back for
grad_output.sign()/.abs() (grad_output_transformed) and a window centred on a pooled θ (window_centre_pooled);
JumpReLU decoding with W_enc transposed (decoder_is_encoder); AuxK's -inf scattered then nan_to_num'd
(auxk_inf_decoded); a logsumexp or the second-largest cosine over latents (smooth_max, second_largest).
Float64-safe correct variants pass."""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import solutions.part5a_sae_architectures as S
import tests.part5a_sae_architectures as C
from tests.proving import assert_fails, assert_passes


def _rect(u):
    return (u.abs() < 0.5).to(u.dtype)


def _dec(a, Wd):
    return einops.einsum(a, Wd, "b i s, i s d -> b i d")


def _heaviside(mode: str):
    class H(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, threshold, bandwidth):
            ctx.save_for_backward(x, threshold)
            ctx.bandwidth = bandwidth
            return (x > threshold).to(x.dtype)

        @staticmethod
        def backward(ctx, g):
            x, th = ctx.saved_tensors
            bw = ctx.bandwidth
            centre = th.mean() if mode == "mean_th" else th
            up = g.sign() if mode == "sign" else g
            return torch.zeros_like(x), -_rect((x - centre) / bw) / bw * up, None

    return H


def _jumprelu_abs_g():
    class J(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, threshold, bandwidth):
            ctx.save_for_backward(x, threshold)
            ctx.bandwidth = bandwidth
            return x * (x > threshold)

        @staticmethod
        def backward(ctx, g):
            x, th = ctx.saved_tensors
            bw = ctx.bandwidth
            return (x > th).to(x.dtype) * g, -(th / bw) * _rect((x - th) / bw) * g.abs(), None

    return J


def test_threshold_gradient_read_backs_are_named():
    failure = assert_fails(C.test_heaviside, _heaviside("sign"), "grad_output_transformed")
    assert "grad_output.sign()" in failure.hint
    failure = assert_fails(C.test_jumprelu, _jumprelu_abs_g(), "grad_output_transformed")
    assert "grad_output.abs()" in failure.hint
    failure = assert_fails(C.test_heaviside, _heaviside("mean_th"), "window_centre_pooled")
    assert "θ.mean()" in failure.hint
    assert_passes(C.test_heaviside, _heaviside("good"))


def test_jumprelu_decoding_with_the_encoder_is_named():
    def forward(self, h):
        pre = einops.einsum(h - self.b_dec, self.W_enc, "b i d, i d s -> b i s") + self.b_enc
        th = self.log_threshold.exp()
        acts = S.JumpReLU.apply(pre, th, self.cfg.jumprelu_bandwidth)
        h_rec = _dec(acts, self.W_enc.transpose(-1, -2)) + self.b_dec
        L0 = S.Heaviside.apply(pre, th, self.cfg.jumprelu_bandwidth).sum(-1)
        rec = (h_rec - h).pow(2).mean(-1)
        loss = (rec.mean(0) + self.sparsity_coeff * L0.mean(0)).sum()
        return {"L_reconstruction": rec, "L_sparsity": L0}, loss, acts, h_rec

    assert_fails(C.test_jumprelu_forward, type("Tied", (S.JumpReLUToySAE,), {"forward": forward}), "decoder_is_encoder")


def _auxk(mode: str):
    def f(pre, residual, dead, Wd, k_aux):
        top = torch.where(dead, pre, -torch.inf).topk(k_aux, dim=-1)
        if mode == "nan_dec":
            acts = torch.zeros_like(pre).scatter(-1, top.indices, top.values)
            r_hat = torch.nan_to_num(_dec(acts, Wd), nan=0.0, posinf=0.0, neginf=0.0)
            return (residual - r_hat).pow(2).mean(-1)
        vals = torch.where(torch.isneginf(top.values), 0.0, top.values)
        if mode == "f32":
            acts = torch.zeros(pre.shape).scatter(-1, top.indices, vals.float())
            return (residual - _dec(acts, Wd.float())).pow(2).mean(-1)
        acts = torch.zeros_like(pre).scatter(-1, top.indices, vals)
        return ((residual - _dec(acts, Wd)) ** 2).sum(-1) / residual.shape[-1]

    return f


def test_auxk_inf_decoded_and_float32_buffer_are_named():
    assert_fails(C.test_auxk_loss, _auxk("nan_dec"), "auxk_inf_decoded")
    failure = assert_fails(C.test_auxk_loss, _auxk("f32"), "float64_inputs")
    assert "float64" in failure.message
    assert_passes(C.test_auxk_loss, _auxk("good"))  # float64-safe: zeros_like, the inputs' dtype throughout


def _fve_f32(h, hr):
    return 1 - (h - hr).pow(2).sum((0, 2)).float() / (h - h.mean(0)).pow(2).sum((0, 2)).float()


def _fve_good(h, hr):
    hc = h - h.mean(0)
    return 1 - torch.linalg.vector_norm(h - hr, dim=(0, 2)) ** 2 / torch.linalg.vector_norm(hc, dim=(0, 2)) ** 2


def test_float64_metrics():
    # counts of a 0/1 mask: .float() is the idiomatic conversion (a correct variant, float32 for float64 acts too)
    assert_passes(C.test_l0_norm, lambda a: (a > 0).sum(-1).float().mean(0))
    assert_fails(C.test_fraction_variance_explained, _fve_f32, "float64_inputs")
    assert_passes(C.test_fraction_variance_explained, _fve_good)
    assert_passes(C.test_l0_norm, lambda a: (a > 0).sum(-1).to(a.dtype).mean(0))
    assert_passes(C.test_l0_norm, lambda a: torch.linalg.vector_norm(a, ord=0, dim=-1).mean(0))
    # a values mistake with a .float() keeps its values diagnosis (the float64 call waits for right float32 values)
    assert_fails(C.test_l0_norm, lambda a: (a[0] != 0).float().sum(-1), "single_example")


def _recovery(mode: str):
    def f(Wf, Wd):
        if mode == "good":
            return F.cosine_similarity(Wd[:, :, :, None], Wf[:, None, :, :], dim=2, eps=1e-8).amax(1)
        fh = Wf / (Wf.norm(dim=1, keepdim=True) + 1e-8)
        dh = Wd / (Wd.norm(dim=-1, keepdim=True) + 1e-8)
        cos = einops.einsum(dh, fh, "i s d, i d f -> i s f")
        return torch.logsumexp(cos, 1) if mode == "lse" else cos.sort(1).values[:, -2]

    return f


def test_recovery_order_slips_are_named():
    assert_fails(C.test_feature_recovery, _recovery("lse"), "smooth_max")
    assert_fails(C.test_feature_recovery, _recovery("second"), "second_largest")
    assert_passes(C.test_feature_recovery, _recovery("good"))
