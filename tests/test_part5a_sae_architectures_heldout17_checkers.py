"""Proofs for part 5a after the fresh36 measurement: a JumpReLU θ-gradient whose factor is the forward output x·H
(not θ) is named as that factor; an FVE whose residual is centred on its batch mean (sklearn's
explained_variance_score) is named; feature_recovery on W_features reshaped where a transpose belongs, with decoder
rows divided by the instance's largest row norm, or with each instance's mean broadcast to every feature, is named;
the correct variants still pass."""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import solutions.part5a_sae_architectures as A
import tests.part5a_sae_architectures as C
from tests.proving import assert_fails, assert_passes


def _rect(u):
    return (u.abs() < 0.5).to(u.dtype)


def _jumprelu_output_factor():
    class J(A.JumpReLU):
        @staticmethod
        def backward(ctx, grad_output):
            x, t = ctx.saved_tensors
            bw = ctx.bandwidth
            out = x * (x > t).to(x.dtype)
            return (x > t).to(x.dtype) * grad_output, -(out / bw) * _rect((x - t) / bw) * grad_output, None

    return J


def test_jumprelu_output_as_theta_factor_is_named():
    failure = assert_fails(C.test_jumprelu, _jumprelu_output_factor(), "theta_factor")
    assert "forward output" in failure.message and "is θ" in failure.hint


def test_fve_centred_residual_is_named():
    def fve(h, hr):
        r = h - hr
        total = (h - h.mean(0, keepdim=True)).pow(2).sum((0, 2))
        return 1 - (r - r.mean(0, keepdim=True)).pow(2).sum((0, 2)) / total

    failure = assert_fails(C.test_fraction_variance_explained, fve, "residual_centred")
    assert "explained_variance_score" in failure.hint


def _recovery(mode):
    def f(Wf, Wd):
        if mode == "reshape":
            Wft = Wf.reshape(Wf.shape[0], Wf.shape[2], Wf.shape[1])
            Wfh = Wft / (Wft.norm(dim=-1, keepdim=True) + 1e-8)
            Wdh = Wd / (Wd.norm(dim=-1, keepdim=True) + 1e-8)
            return einops.einsum(Wdh, Wfh, "i s d, i f d -> i s f").max(1).values
        Wfh = Wf / (Wf.norm(dim=1, keepdim=True) + 1e-8)
        Wdh = Wd / (Wd.norm(dim=-1, keepdim=True) + 1e-8)
        if mode == "largest":
            Wdh = Wd / (Wd.norm(dim=-1, keepdim=True).max(1, keepdim=True).values + 1e-8)
        best = einops.einsum(Wdh, Wfh, "i s d, i d f -> i s f").max(1).values
        return best.mean(-1, keepdim=True).expand(-1, Wf.shape[2]) if mode == "mean" else best

    return f


def test_recovery_reshape_for_transpose_is_named():
    failure = assert_fails(C.test_feature_recovery, _recovery("reshape"), "reshaped_not_transposed")
    assert "W_features.reshape" in failure.hint and "transpose(1, 2)" in failure.hint


def test_recovery_largest_row_norm_is_named():
    failure = assert_fails(C.test_feature_recovery, _recovery("largest"), "norm_reduced")
    assert "largest norm" in failure.hint and "W_dec" in failure.hint


def test_recovery_mean_broadcast_over_features_is_named():
    failure = assert_fails(C.test_feature_recovery, _recovery("mean"), "reduced_broadcast")
    assert "averaged over the features" in failure.hint


def test_recovery_and_jumprelu_correct_variants_pass():
    cos = lambda Wf, Wd: F.cosine_similarity(Wd[:, :, None, :], Wf.transpose(1, 2)[:, None], dim=-1).amax(1)
    assert_passes(C.test_feature_recovery, cos)
    assert_passes(C.test_feature_recovery, A.feature_recovery)
    assert_passes(C.test_jumprelu, A.JumpReLU)
    assert_passes(C.test_fraction_variance_explained, A.fraction_variance_explained)
    assert torch.is_tensor(A.feature_recovery(torch.randn(2, 3, 4), torch.randn(2, 5, 3)))
