"""Proofs for part 5a's diagnoses added after the fresh25 held-out measurement (part5a_sae_architectures_slips.py):
JumpReLU at negative thresholds (an extra `x > 0` mask in the x-gradient), exp(r_mag) added in the Gated SAE, an L1
loss with L0 logged, top-k chosen by |pre|, aux_coeff inside auxk_loss, FVE as a percentage (the batch is no longer
100), Frobenius-normalised recovery, and a negated parameter in the JumpReLU and TopK forwards."""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import solutions.part5a_sae_architectures as A
import tests.part5a_sae_architectures as C
from tests.proving import assert_fails


class _ReluMaskJumpReLU(A.JumpReLU):
    """The reference's forward and θ-gradient, with an extra `x > 0` mask on the x-gradient."""

    @staticmethod
    def backward(ctx, g):
        grad_x, grad_th, _ = A.JumpReLU.backward(ctx, g)
        x, _ = ctx.saved_tensors
        return grad_x * (x > 0).to(x.dtype), grad_th, None


def test_relu_mask_in_jumprelu_grad_x_is_named():
    failure = assert_fails(C.test_jumprelu, _ReluMaskJumpReLU, "relu_mask_grad_x")
    assert "x > 0" in failure.hint


class _AddedRMag(A.GatedToySAE):
    def forward(self, h):
        x = h - self.b_dec
        proj = einops.einsum(x, self.W_enc, "b i d, i d s -> b i s")
        gate_pre = proj + self.b_enc
        acts = (gate_pre > 0).to(h.dtype) * F.relu(proj + self.r_mag.exp() + self.b_mag)
        W = self.W_dec_normalized
        h_rec = einops.einsum(acts, W, "b i s, i s d -> b i d") + self.b_dec
        via = einops.einsum(F.relu(gate_pre), W.detach(), "b i s, i s d -> b i d") + self.b_dec.detach()
        ld = {
            "L_reconstruction": (h_rec - h).pow(2).mean(-1),
            "L_sparsity": F.relu(gate_pre).sum(-1),
            "L_aux": (via - h).pow(2).mean(-1),
        }
        per = ld["L_reconstruction"] + self.sparsity_coeff * ld["L_sparsity"] + ld["L_aux"]
        return ld, per.mean(0).sum(), acts, h_rec


def test_r_mag_added_is_named():
    assert_fails(C.test_gated_forward, _AddedRMag, "r_mag_added")


class _L1Loss(A.JumpReLUToySAE):
    def forward(self, h):
        ld, _, acts, h_rec = A.JumpReLUToySAE.forward(self, h)
        loss = (ld["L_reconstruction"] + self.sparsity_coeff * acts.abs().sum(-1)).mean(0).sum()
        return ld, loss, acts, h_rec


def test_jumprelu_l1_loss_with_l0_logged_is_named():
    assert_fails(C.test_jumprelu_forward, _L1Loss, "loss_l1_logged_l0")


class _NegatedThreshold(A.JumpReLUToySAE):
    def forward(self, h):
        with torch.no_grad():
            self.log_threshold.neg_()
        try:
            return A.JumpReLUToySAE.forward(self, h)
        finally:
            with torch.no_grad():
                self.log_threshold.neg_()


def test_jumprelu_negated_log_threshold_is_named():
    assert_fails(C.test_jumprelu_forward, _NegatedThreshold, "negated_parameter")


class _AbsTopK(A.TopKToySAE):
    def forward(self, h):
        pre = einops.einsum(h - self.b_dec, self.W_enc, "b i d, i d s -> b i s") + self.b_enc
        idx = pre.abs().topk(self.cfg.k, dim=-1).indices
        acts = torch.zeros_like(pre).scatter(-1, idx, F.relu(pre).gather(-1, idx))
        h_rec = einops.einsum(acts, self.W_dec_normalized, "b i s, i s d -> b i d") + self.b_dec
        ld = {"L_reconstruction": (h_rec - h).pow(2).mean(-1), "L_sparsity": (acts > 0).to(h.dtype).sum(-1)}
        return ld, ld["L_reconstruction"].mean(0).sum(), acts, h_rec


def test_topk_chosen_by_abs_pre_is_named():
    assert_fails(C.test_topk_forward, _AbsTopK, "chosen_by_abs_pre")


class _NegatedBEncTopK(A.TopKToySAE):
    def forward(self, h):
        pre = einops.einsum(h - self.b_dec, self.W_enc, "b i d, i d s -> b i s") - self.b_enc
        top = F.relu(pre).topk(self.cfg.k, dim=-1)
        acts = torch.zeros_like(pre).scatter(-1, top.indices, top.values)
        h_rec = einops.einsum(acts, self.W_dec_normalized, "b i s, i s d -> b i d") + self.b_dec
        ld = {"L_reconstruction": (h_rec - h).pow(2).mean(-1), "L_sparsity": (acts > 0).to(h.dtype).sum(-1)}
        return ld, ld["L_reconstruction"].mean(0).sum(), acts, h_rec


def test_topk_negated_b_enc_is_named():
    assert_fails(C.test_topk_forward, _NegatedBEncTopK, "negated_parameter")


def test_aux_coeff_inside_auxk_loss_is_named():
    failure = assert_fails(C.test_auxk_loss, lambda *a: A.auxk_loss(*a) / 32, "aux_coeff_inside")
    assert "aux_coeff" in failure.hint


def test_fve_percentage_is_named():
    failure = assert_fails(
        C.test_fraction_variance_explained, lambda h, r: 100 * A.fraction_variance_explained(h, r), "percentage"
    )
    assert "percentage" in failure.hint


def _frobenius_recovery(W_feat, W_dec):
    cos = einops.einsum(W_dec, W_feat, "i s d, i d f -> i s f")
    return (cos / (W_dec.norm(dim=(1, 2)) * W_feat.norm(dim=(1, 2)))[:, None, None]).max(1).values


def test_frobenius_recovery_is_named():
    assert_fails(C.test_feature_recovery, _frobenius_recovery, "global_norm")
