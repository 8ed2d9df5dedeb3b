"""Proofs for part 5a's metric variants (`tests.part5a_sae_architectures_metric_variants`): L0 counted after an
integer cast; dead latents tested after a float16 cast (and torch.isclose's tolerance still named apart from it);
the FVE's ratio inverted, its total mixing the biased variance with × (n - 1), its residual a difference of norms;
feature recovery picking the latent by |cos|; AuxK's k taken from instance 0's dead count."""

from __future__ import annotations

import einops
import torch

import tests.part5a_sae_architectures as C
from tests.proving import assert_fails, assert_passes


def test_l0_int_cast_named():
    failure = assert_fails(C.test_l0_norm, lambda a: (a.int() != 0).to(a.dtype).sum(-1).mean(0), "int_cast")
    assert "|a| ≥ 1" in failure.hint


def test_dead_half_cast_named_and_isclose_apart():
    failure = assert_fails(
        C.test_dead_latent_fraction, lambda a: (a.half() == 0).all(0).to(a.dtype).mean(-1), "low_precision_cast"
    )
    assert "float16" in failure.hint

    def isclose(a):
        return torch.isclose(a, torch.zeros_like(a)).all(0).to(a.dtype).mean(-1)

    failure = assert_fails(C.test_dead_latent_fraction, isclose, "zero_tolerance")
    assert "float16" not in failure.hint
    assert_passes(C.test_dead_latent_fraction, lambda a: (a.double() == 0).all(0).to(a.dtype).mean(-1))


def _fve(mode):
    def f(h, h_rec):
        n = h.shape[0]
        res = (h - h_rec).pow(2).sum((0, 2))
        tot = (h - h.mean(0, keepdim=True)).pow(2).sum((0, 2))
        if mode == "inverted":
            return 1 - tot / res
        if mode == "biased_n1":
            return 1 - res / (h.var(0, unbiased=False).sum(-1) * (n - 1))
        if mode == "unbiased_n1":  # a consistent convention: correct
            return 1 - res / (h.var(0).sum(-1) * (n - 1))
        return 1 - (h.norm(dim=-1) - h_rec.norm(dim=-1)).pow(2).sum(0) / tot

    return f


def test_fve_ratio_slips_named():
    assert_fails(C.test_fraction_variance_explained, _fve("inverted"), "ratio_inverted")
    failure = assert_fails(C.test_fraction_variance_explained, _fve("biased_n1"), "variance_convention_mixed")
    assert "(n - 1)/n" in failure.hint
    assert_fails(C.test_fraction_variance_explained, _fve("norm_diff"), "norm_difference")
    assert_passes(C.test_fraction_variance_explained, _fve("unbiased_n1"))


def test_recovery_abs_pick_named():
    def abs_pick(W_features, W_dec):
        Wf = W_features / W_features.norm(dim=1, keepdim=True)
        Wd = W_dec / W_dec.norm(dim=-1, keepdim=True)
        cos = einops.einsum(Wd, Wf, "i s d, i d f -> i s f")
        return cos.gather(1, cos.abs().argmax(dim=1, keepdim=True)).squeeze(1)

    assert_fails(C.test_feature_recovery, abs_pick, "abs_argmax_signed")


def _auxk(k_of):
    def f(pre, residual, dead, W_dec_normalized, k_aux):
        top = torch.where(dead, pre, -torch.inf).topk(k_of(dead, k_aux), dim=-1)
        vals = torch.where(top.values.isfinite(), top.values, torch.zeros_like(top.values))
        acts = torch.zeros_like(pre).scatter(-1, top.indices, vals)
        rh = einops.einsum(acts, W_dec_normalized, "b i s, i s d -> b i d")
        return (residual - rh).pow(2).mean(-1)

    return f


def test_auxk_k_from_instance0_named():
    failure = assert_fails(C.test_auxk_loss, _auxk(lambda d, k: min(k, int(d[0].sum()))), "k_from_instance0")
    assert "instance 0" in failure.hint
    assert_passes(C.test_auxk_loss, _auxk(lambda d, k: k))
