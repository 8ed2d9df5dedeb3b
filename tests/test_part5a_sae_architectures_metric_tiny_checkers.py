"""Proofs for `tests.part5a_sae_architectures_metric_tiny`: l0_norm counting after a float16 cast;
dead_latent_fraction rounded (a zero sum over the batch is right: activations are never negative); the FVE's
shortcut total without brackets, its total × n_inst, its residual not squared; feature recovery over a sum of norms.
Correct positive-only readings (acts > 0) still pass."""

from __future__ import annotations

import einops
import torch

import tests.part5a_sae_architectures as C
from tests.proving import assert_fails, assert_passes


def test_l0_half_cast_named():
    failure = assert_fails(C.test_l0_norm, lambda a: (a.half() != 0).to(a.dtype).sum(-1).mean(0), "low_precision_cast")
    assert "float16" in failure.hint
    assert_passes(C.test_l0_norm, lambda a: (a > 0).to(a.dtype).sum(-1).mean(0))
    assert_passes(C.test_l0_norm, lambda a: (a.abs() != 0).to(a.dtype).sum(-1).mean(0))


def test_dead_rounded_named_and_sums_of_non_negative_acts_pass():
    failure = assert_fails(
        C.test_dead_latent_fraction, lambda a: (a == 0).all(0).to(a.dtype).mean(-1).round(decimals=2), "rounded"
    )
    assert "2 decimals" in failure.hint
    assert_passes(C.test_dead_latent_fraction, lambda a: 1 - (a > 0).any(0).to(a.dtype).mean(-1))
    assert_passes(C.test_dead_latent_fraction, lambda a: (a.abs().sum(0) == 0).to(a.dtype).mean(-1))
    # activations are never negative (the docstring), so a zero sum or mean means zero everywhere
    assert_passes(C.test_dead_latent_fraction, lambda a: (a.sum(0) == 0).to(a.dtype).mean(-1))
    assert_passes(C.test_dead_latent_fraction, lambda a: (a.mean(0) == 0).to(a.dtype).mean(-1))


def _fve(mode):
    def f(h, h_rec):
        res = (h - h_rec).pow(2).sum((0, 2))
        tot = (h - h.mean(0, keepdim=True)).pow(2).sum((0, 2))
        if mode == "precedence":
            return 1 - res / h.pow(2).sum((0, 2)) - h.shape[0] * h.mean(0).pow(2).sum(-1)
        if mode == "times_inst":
            return 1 - res / (h.var(0, unbiased=False).sum(-1) * h.shape[1])
        if mode == "norm":
            return 1 - (h - h_rec).norm(dim=-1).sum(0) / tot
        if mode == "shortcut":
            return 1 - res / (h.pow(2).sum((0, 2)) - h.shape[0] * h.mean(0).pow(2).sum(-1))
        return 1 - res / tot

    return f


def test_fve_formula_slips_named():
    assert_fails(C.test_fraction_variance_explained, _fve("precedence"), "precedence")
    failure = assert_fails(C.test_fraction_variance_explained, _fve("times_inst"), "total_size_factor")
    assert "n_inst" in failure.hint
    assert_fails(C.test_fraction_variance_explained, _fve("norm"), "residual_not_squared")
    assert_passes(C.test_fraction_variance_explained, _fve("shortcut"))


def test_recovery_sum_of_norms_named():
    def sum_norms(W_features, W_dec):
        dot = einops.einsum(W_dec, W_features, "i s d, i d f -> i s f")
        n = W_dec.norm(dim=-1)[:, :, None] + W_features.norm(dim=1)[:, None, :]
        return (dot / (n + 1e-8)).max(dim=1).values

    failure = assert_fails(C.test_feature_recovery, sum_norms, "norm_sum")
    assert "product" in failure.hint
    assert_passes(
        C.test_feature_recovery,
        lambda Wf, Wd: torch.nn.functional.cosine_similarity(Wd[:, :, None, :], Wf.mT[:, None], dim=-1).amax(1),
    )
