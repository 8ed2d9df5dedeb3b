"""Proofs for part 5a after the fresh28 measurement: a JumpReLU backward that edits grad_output in place (so the
θ-gradient reads the masked values) is named by the edit, not by the spoilt θ-gradient; the Gated SAE's L_sparsity
written as the L2 norm of ReLU(π_gate) instead of its sum is named by the one-change search."""

from __future__ import annotations

import einops
import torch.nn.functional as F

import solutions.part5a_sae_architectures as A
import tests.part5a_sae_architectures as C
from tests.proving import assert_fails, assert_passes


def _rect(u):
    return (u.abs() < 0.5).to(u.dtype)


class _InPlaceJumpReLU(A.JumpReLU):
    """The gate applied to grad_output in place before the θ-gradient is computed from it."""

    @staticmethod
    def backward(ctx, grad_output):
        x, threshold = ctx.saved_tensors
        grad_output.mul_((x > threshold).to(grad_output.dtype))
        window = _rect((x - threshold) / ctx.bandwidth)
        return grad_output, -(threshold / ctx.bandwidth) * window * grad_output, None


class _InPlaceAfterJumpReLU(A.JumpReLU):
    """An in-place edit of grad_output after every gradient was computed from it: the gradients are right, so the
    checker passes it (it only names the edit when it spoilt a gradient)."""

    @staticmethod
    def backward(ctx, grad_output):
        x, threshold = ctx.saved_tensors
        grad_th = -(threshold / ctx.bandwidth) * _rect((x - threshold) / ctx.bandwidth) * grad_output
        grad_x = (x > threshold).to(x.dtype) * grad_output
        grad_output.zero_()
        return grad_x, grad_th, None


def test_jumprelu_grad_output_edited_in_place_is_named():
    failure = assert_fails(C.test_jumprelu, _InPlaceJumpReLU, "grad_output_in_place")
    assert "in place" in failure.message and "grad_output.mul_(mask)" in failure.hint


def test_jumprelu_grad_output_edited_after_use_passes():
    assert_passes(C.test_jumprelu, _InPlaceAfterJumpReLU)


class _L2SparsityGated(A.GatedToySAE):
    def forward(self, h):
        x = h - self.b_dec
        proj = einops.einsum(x, self.W_enc, "b i d, i d s -> b i s")
        gate_pre = proj + self.b_enc
        acts = (gate_pre > 0).to(h.dtype) * F.relu(proj * self.r_mag.exp() + self.b_mag)
        W = self.W_dec_normalized
        h_rec = einops.einsum(acts, W, "b i s, i s d -> b i d") + self.b_dec
        gate = F.relu(gate_pre)
        via = einops.einsum(gate, W.detach(), "b i s, i s d -> b i d") + self.b_dec.detach()
        d = {
            "L_reconstruction": (h_rec - h).pow(2).mean(-1),
            "L_sparsity": gate.norm(dim=-1),
            "L_aux": (via - h).pow(2).mean(-1),
        }
        per = d["L_reconstruction"] + self.sparsity_coeff * d["L_sparsity"] + d["L_aux"]
        return d, per.mean(0).sum(), acts, h_rec


def test_gated_l2_sparsity_is_named():
    failure = assert_fails(C.test_gated_forward, _L2SparsityGated, "one_change")
    assert "L2 norm" in failure.hint and ".norm(dim=-1)" in failure.hint
