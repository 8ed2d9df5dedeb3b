"""Held-out round AV (fresh47) for part 5a: a closed Heaviside window (an accepted convention, differing only at an
input exactly on the window's edge), the dead count divided by the alive count, and the argmax index returned by
feature_recovery in place of the best cosine."""

from __future__ import annotations

import einops
import torch

import solutions.part5a_sae_architectures as S
import tests.part5a_sae_architectures as C
from tests.proving import assert_fails, assert_passes


def _hv(closed: bool):
    class H(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, th, bw):
            ctx.save_for_backward(x, th)
            ctx.bandwidth = bw
            return (x > th).to(x.dtype)

        @staticmethod
        def backward(ctx, go):
            x, th = ctx.saved_tensors
            bw = ctx.bandwidth
            u = (x - th) / bw
            k = (u.abs() <= 0.5).to(u.dtype) if closed else S.rectangle(u)
            return torch.zeros_like(x), -k / bw * go, None

    return H


def test_heaviside_closed_window_passes():
    """|u| <= 1/2: only an input exactly on the window's edge differs (measure zero), an accepted convention."""
    assert_passes(C.test_heaviside, _hv(closed=True))


def _dead_over_alive(a):
    d = (a == 0).all(0).to(a.dtype).sum(-1)
    return d / (a.shape[-1] - d).clamp_min(1)


def test_dead_latent_fraction_over_alive():
    failure = assert_fails(C.test_dead_latent_fraction, _dead_over_alive, "dead_over_alive")
    assert "alive" in str(failure)


def test_dead_latent_fraction_prod_passes():
    assert_passes(C.test_dead_latent_fraction, lambda a: torch.prod((a == 0).to(a.dtype), dim=0).mean(-1))


def _cos(Wf, Wd):
    Wfh = Wf / (Wf.norm(dim=1, keepdim=True) + 1e-8)
    Wdh = Wd / (Wd.norm(dim=-1, keepdim=True) + 1e-8)
    return einops.einsum(Wdh, Wfh, "i s d, i d f -> i s f")


def test_feature_recovery_max_indices():
    failure = assert_fails(
        C.test_feature_recovery, lambda Wf, Wd: _cos(Wf, Wd).max(1)[1].to(Wf.dtype), "returned_indices"
    )
    assert "index" in str(failure)


def test_feature_recovery_raw_dot_indices():
    impl = lambda Wf, Wd: einops.einsum(Wd, Wf, "i s d, i d f -> i s f").argmax(1).to(Wf.dtype)
    assert_fails(C.test_feature_recovery, impl, "returned_indices")


def test_feature_recovery_bmm_vector_norm_passes():
    def fr_ok(Wf, Wd):
        Wfh = Wf / torch.linalg.vector_norm(Wf, dim=1, keepdim=True).clamp_min(1e-12)
        Wdh = Wd / torch.linalg.vector_norm(Wd, dim=2, keepdim=True).clamp_min(1e-12)
        return torch.bmm(Wdh, Wfh).amax(1)

    assert_passes(C.test_feature_recovery, fr_ok)
