"""Held-out round AX (fresh49), part 5a, second fix round: metric measures swapped, read back as catalogue entries.

* auxk_loss as mean |e - ê| (code abs_error), L0 as the sum of acts.clamp(max=1) (soft_count), the FVE total
  centred on the batch median (centred_on_median), feature recovery with ε = 1e-2 added to each norm
  (norm_eps): each was "differs" with the formula restated; now the hint names the mistake.
"""

from __future__ import annotations

import einops
import torch

import tests.part5a_sae_architectures as C
from tests.proving import assert_fails


def _dec(a, W):
    return einops.einsum(a, W, "b i s, i s d -> b i d")


def _auxk_abs(pre, residual, dead, W, k_aux):
    top = torch.where(dead, pre, -torch.inf).topk(k_aux, dim=-1)
    vals = torch.where(top.values.isfinite(), top.values, torch.zeros_like(top.values))
    acts = torch.zeros_like(pre).scatter(-1, top.indices, vals)
    return (residual - _dec(acts, W)).abs().mean(-1)


def test_auxk_mean_abs_error_named():
    err = str(assert_fails(C.test_auxk_loss, _auxk_abs, "abs_error"))
    assert "absolute error" in err


def test_l0_soft_count_named():
    err = str(assert_fails(C.test_l0_norm, lambda a: a.clamp(max=1).sum(-1).mean(0), "soft_count"))
    assert "clamp(max=1)" in err


def test_fve_centred_on_median_named():
    def fve(h, r):
        return 1 - (h - r).pow(2).sum((0, 2)) / (h - h.median(0, keepdim=True).values).pow(2).sum((0, 2))

    err = str(assert_fails(C.test_fraction_variance_explained, fve, "centred_on_median"))
    assert "median" in err


def test_recovery_eps_1e_2_named():
    def rec(Wf, Wd):
        d_hat, f_hat = Wd / (Wd.norm(dim=-1, keepdim=True) + 1e-2), Wf / (Wf.norm(dim=1, keepdim=True) + 1e-2)
        return einops.einsum(d_hat, f_hat, "i s d, i d f -> i s f").amax(1)

    err = str(assert_fails(C.test_feature_recovery, rec, "norm_eps"))
    assert "1e-2" in err or "0.01" in err
