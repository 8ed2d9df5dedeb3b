"""Proofs for part 5a after the fresh43 measurement: which parameter was used where. The Gated SAE's magnitude
(or gate) path projecting with W_dec_normalized instead of the shared W_enc (mag/gate_projects_with_decoder); L_aux
decoding ReLU(π_gate)·exp(r_mag) (aux_decodes_gate_scaled); a JumpReLU backward reading the forward's output back
as θ (output_as_threshold, in ∂/∂x or ∂/∂θ); L_sparsity's Heaviside with θ pooled over latents or instances
(l0_theta_pooled); a decoder divided by its whole-matrix norm (decoder_frobenius_normalised); AuxK decoding every
instance with instance 0's decoder (auxk_decoder_first_instance). Correct variants pass."""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import solutions.part5a_sae_architectures as S
import tests.part5a_sae_architectures as C
from tests.proving import assert_fails, assert_passes


def _gated(mode: str):
    class G(S.GatedToySAE):
        def forward(self, h):
            x = h - self.b_dec
            proj = einops.einsum(x, self.W_enc, "b i d, i d s -> b i s")
            dproj = einops.einsum(x, self.W_dec_normalized, "b i d, i s d -> b i s")
            gate_pre = (dproj if mode == "gatedec" else proj) + self.b_enc
            mag_pre = (dproj if mode == "magdec" else proj) * self.r_mag.exp() + self.b_mag
            acts = torch.where(gate_pre > 0, mag_pre.clamp(min=0), torch.zeros_like(mag_pre))
            W = self.W_dec_normalized
            h_rec = einops.einsum(acts, W, "b i s, i s d -> b i d") + self.b_dec
            gp = F.relu(gate_pre)
            aux_in = gp * self.r_mag.exp() if mode == "auxexp" else gp
            via = einops.einsum(aux_in, W.detach(), "b i s, i s d -> b i d") + self.b_dec.detach()
            ld = {
                "L_reconstruction": F.mse_loss(h_rec, h, reduction="none").mean(-1),
                "L_sparsity": gp.sum(-1),
                "L_aux": F.mse_loss(via, h, reduction="none").mean(-1),
            }
            per = ld["L_reconstruction"] + self.sparsity_coeff * ld["L_sparsity"] + ld["L_aux"]
            return ld, per.sum() / h.shape[0], acts, h_rec

    return G


def test_gated_weight_readings():
    failure = assert_fails(C.test_gated_forward, _gated("magdec"), "mag_projects_with_decoder")
    assert "W_dec_normalized" in failure.hint and "share W_enc" in failure.hint
    assert_fails(C.test_gated_forward, _gated("gatedec"), "gate_projects_with_decoder")
    failure = assert_fails(C.test_gated_forward, _gated("auxexp"), "aux_decodes_gate_scaled")
    assert "exp(r_mag)" in failure.hint
    assert_passes(C.test_gated_forward, _gated("good"))


def _jumprelu(mode: str):
    class J(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, threshold, bandwidth):
            out = x * (x > threshold).to(x.dtype)
            ctx.save_for_backward(x, threshold if mode == "good" else out)
            ctx.bandwidth = bandwidth
            return out

        @staticmethod
        def backward(ctx, g):
            x, th = ctx.saved_tensors
            bw = ctx.bandwidth
            gx = g * (th != 0).to(x.dtype) if mode == "out_x_right" else g.masked_fill(x <= th, 0)
            return gx, -(th / bw) * ((x - th) / bw).abs().lt(0.5).to(x.dtype) * g, None

    return J


def test_jumprelu_output_as_threshold():
    failure = assert_fails(C.test_jumprelu, _jumprelu("out"), "output_as_threshold")
    assert "save_for_backward(x, out)" in failure.hint
    assert_fails(C.test_jumprelu, _jumprelu("out_x_right"), "output_as_threshold")  # read back in ∂/∂θ
    assert_passes(C.test_jumprelu, _jumprelu("good"))


def _jumprelu_sae(pool: str):
    class JF(S.JumpReLUToySAE):
        def forward(self, h):
            pre = einops.einsum(h - self.b_dec, self.W_enc, "b i d, i d s -> b i s") + self.b_enc
            th = self.log_threshold.exp().expand_as(pre)
            bw = self.cfg.jumprelu_bandwidth
            acts = S.JumpReLU.apply(pre, th, bw)
            h_rec = einops.einsum(acts, self.W_dec_normalized, "b i s, i s d -> b i d") + self.b_dec
            l0_th = {
                "latents": lambda: th.mean(-1, keepdim=True).expand_as(pre),
                "instances": lambda: self.log_threshold.exp().median(0).values.expand_as(pre),
            }.get(pool, lambda: th)()
            Lrec = (h_rec - h).pow(2).mean(-1)
            Lsp = S.Heaviside.apply(pre, l0_th, bw).sum(-1)
            ld = {"L_reconstruction": Lrec, "L_sparsity": Lsp}
            return ld, (Lrec + self.sparsity_coeff * Lsp).mean(0).sum(), acts, h_rec

    return JF


def test_jumprelu_l0_pooled_theta():
    failure = assert_fails(C.test_jumprelu_forward, _jumprelu_sae("latents"), "l0_theta_pooled")
    assert "the mean θ over latents" in failure.message
    failure = assert_fails(C.test_jumprelu_forward, _jumprelu_sae("instances"), "l0_theta_pooled")
    assert "the median θ over instances" in failure.message
    assert_passes(C.test_jumprelu_forward, _jumprelu_sae("good"))


def _topk(mode: str):
    class TK(S.TopKToySAE):
        def forward(self, h):
            pre = einops.einsum(h - self.b_dec, self.W_enc, "b i d, i d s -> b i s") + self.b_enc
            top = F.relu(pre).topk(self.cfg.k, dim=-1)
            acts = torch.zeros_like(pre).scatter(-1, top.indices, top.values)
            W = self.W_dec_normalized
            if mode == "frob":
                W = self.W_dec / self.W_dec.norm(dim=(-2, -1), keepdim=True)
            h_rec = einops.einsum(acts, W, "b i s, i s d -> b i d") + self.b_dec
            Lrec = (h_rec - h).pow(2).mean(-1)
            ld = {"L_reconstruction": Lrec, "L_sparsity": (acts > 0).to(h.dtype).sum(-1)}
            return ld, Lrec.mean(0).sum(), acts, h_rec

    return TK


def test_topk_frobenius_decoder():
    failure = assert_fails(C.test_topk_forward, _topk("frob"), "decoder_frobenius_normalised")
    assert "Frobenius" in failure.hint
    assert_passes(C.test_topk_forward, _topk("good"))


def _auxk(first: bool):
    def f(pre, residual, dead, W, k_aux):
        top = torch.where(dead, pre, -torch.inf).topk(k_aux, dim=-1)
        vals = torch.where(top.values.isinf(), torch.zeros_like(top.values), top.values)
        acts = torch.zeros_like(pre).scatter(-1, top.indices, vals)
        rh = (
            einops.einsum(acts, W[0], "b i s, s d -> b i d")
            if first
            else einops.einsum(acts, W, "b i s, i s d -> b i d")
        )
        return (residual - rh).pow(2).mean(-1)

    return f


def test_auxk_first_instance_decoder():
    failure = assert_fails(C.test_auxk_loss, _auxk(True), "auxk_decoder_first_instance")
    assert "instance 0's decoder" in failure.hint
    assert_passes(C.test_auxk_loss, _auxk(False))
