"""Proofs for part 5a's diagnoses added after the fresh12 held-out measurement: a threshold gradient whose window
sits far from θ (K(x - θ/ε), operator precedence), one step function's backward copied into the other, the JumpReLU
SAE decoding ReLU(pre), FVE with absolute deviations or norms, a zero count compared with n_inst or d_sae (or the
dead count divided by n_inst), feature f paired with latent f, a numpy result, and AuxK's -inf cleared by a 0/1 mask
(NaN)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import solutions.part5a_sae_architectures as A
import tests.part5a_sae_architectures as C
from tests.proving import assert_fails

rect = A.rectangle


def _step(kind: str, backward_of: str, kernel=lambda x, th, bw: (x - th) / bw) -> type:
    class Step(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, threshold, bandwidth):
            ctx.save_for_backward(x, threshold)
            ctx.bandwidth = bandwidth
            return (x > threshold).to(x.dtype) * (x if kind == "jump" else 1)

        @staticmethod
        def backward(ctx, g):
            x, th = ctx.saved_tensors
            window = rect(kernel(x, th, ctx.bandwidth)) / ctx.bandwidth
            if backward_of == "jump":
                return (x > th).to(x.dtype) * g, -th * window * g, None
            return torch.zeros_like(x), -window * g, None

    return Step


def test_heaviside_kernel_precedence():
    impl = _step("heavi", "heavi", kernel=lambda x, th, bw: x - th / bw)
    assert "precedence" in assert_fails(C.test_heaviside, impl, "window_misplaced").hint


def test_jumprelu_backward_copied_from_heaviside():
    assert "θ" in assert_fails(C.test_jumprelu, _step("jump", "heavi"), "copied_backward").hint


def test_heaviside_backward_copied_from_jumprelu():
    assert_fails(C.test_heaviside, _step("heavi", "jump"), "copied_backward")


@pytest.mark.parametrize("decode", ["relu", "pre"])
def test_jumprelu_forward_decodes_another_tensor(decode):
    def forward(self, h):
        pre = torch.einsum("bid,ids->bis", h - self.b_dec, self.W_enc) + self.b_enc
        theta = self.log_threshold.exp().expand_as(pre)
        bw = self.cfg.jumprelu_bandwidth
        acts = A.JumpReLU.apply(pre, theta, bw)
        src = pre.relu() if decode == "relu" else pre
        h_rec = torch.einsum("bis,isd->bid", src, self.W_dec_normalized) + self.b_dec
        d = {"L_reconstruction": (h_rec - h).pow(2).mean(-1), "L_sparsity": A.Heaviside.apply(pre, theta, bw).sum(-1)}
        return d, (d["L_reconstruction"] + self.sparsity_coeff * d["L_sparsity"]).mean(0).sum(), acts, h_rec

    assert_fails(C.test_jumprelu_forward, type("J", (A.JumpReLUToySAE,), {"forward": forward}), f"decoded_{decode}")


def test_fve_absolute_deviations():
    fve = lambda h, hr: 1 - (h - hr).abs().sum((0, 2)) / (h - h.mean(0)).abs().sum((0, 2))
    assert_fails(C.test_fraction_variance_explained, fve, "abs_deviations")


def test_fve_norms():
    fve = lambda h, hr: 1 - (h - hr).norm(dim=(0, 2)) / (h - h.mean(0)).norm(dim=(0, 2))
    assert_fails(C.test_fraction_variance_explained, fve, "sqrt_ratio")


@pytest.mark.parametrize("axis", [1, 2])
def test_dead_count_compared_with_another_size(axis):
    dead = lambda acts: ((acts == 0).sum(0) == acts.shape[axis]).float().mean(-1)
    err = assert_fails(C.test_dead_latent_fraction, dead, "count_wrong_size")
    assert f"acts.shape[{axis}]" in err.hint


def test_dead_count_divided_by_n_inst():
    dead = lambda acts: (acts == 0).all(0).float().sum(-1) / acts.shape[1]
    err = assert_fails(C.test_dead_latent_fraction, dead, "dead_divided_wrong_size")
    assert "acts.shape[1]" in err.hint and "largest" not in err.hint


def test_recovery_diagonal():
    rec = lambda Wf, Wd: F.cosine_similarity(Wd[:, : Wf.shape[-1]], Wf.transpose(1, 2)[:, : Wd.shape[1]], dim=-1)
    assert_fails(C.test_feature_recovery, rec, "diagonal")


def test_l0_numpy():
    l0 = lambda acts: np.count_nonzero(acts.numpy(), axis=-1).mean(0)
    assert "torch" in assert_fails(C.test_l0_norm, l0, "not_tensor").hint


def test_auxk_mask_times_inf():
    def auxk(pre, residual, dead, W_dec, k_aux):
        top = torch.where(dead, pre, -torch.inf).topk(k_aux, dim=-1)
        acts = torch.zeros_like(pre).scatter(-1, top.indices, top.values * top.values.isfinite())
        return (torch.einsum("bis,isd->bid", acts, W_dec) - residual).pow(2).mean(-1)

    assert "-inf · 0 is NaN" in assert_fails(C.test_auxk_loss, auxk, "inf").hint
