"""Proofs for part 5a's auxk_loss and metric slips (`tests.part5a_sae_architectures_metric_slips`): AuxK latents
chosen once per batch, decoded with the first k_aux rows, or picked without the dead mask; L0 counting every latent;
the FVE's batch mean divided by d_in and its shortcut total without × batch; feature recovery matched one-to-one;
dead latents found with torch.isclose's tolerance (and every exact form of dead still passing)."""

from __future__ import annotations

import einops
import torch

import tests.part5a_sae_architectures as C
from tests.proving import assert_fails, assert_passes


def _dec(a, Wd):
    return einops.einsum(a, Wd, "b i s, i s d -> b i d")


def _auxk_same_latents(pre, res, dead, Wd, k):
    top = torch.where(dead, pre.mean(0), -torch.inf).topk(k, dim=-1)
    mask = torch.zeros_like(dead).scatter(-1, top.indices, top.values.isfinite())
    return (res - _dec(torch.where(mask, pre, torch.zeros_like(pre)), Wd)).pow(2).mean(-1)


def _auxk_first_rows(pre, res, dead, Wd, k):
    top = torch.where(dead, pre, -torch.inf).topk(k, dim=-1)
    v = torch.where(top.values.isfinite(), top.values, torch.zeros_like(top.values))
    return (res - einops.einsum(v, Wd[:, :k], "b i s, i s d -> b i d")).pow(2).mean(-1)


def _auxk_per_example_dead(pre, res, dead, Wd, k):
    top = torch.where(pre <= 0, pre, -torch.inf).topk(k, dim=-1)
    v = torch.where(top.values.isfinite(), top.values, torch.zeros_like(top.values))
    return (res - _dec(torch.zeros_like(pre).scatter(-1, top.indices, v), Wd)).pow(2).mean(-1)


def test_auxk_slips_named():
    failure = assert_fails(C.test_auxk_loss, _auxk_same_latents, "auxk_shared_latents")
    assert "same dead latents for every example" in failure.hint
    failure = assert_fails(C.test_auxk_loss, _auxk_first_rows, "auxk_rows_unscattered")
    assert "first k_aux rows" in failure.hint and "scatter" in failure.hint
    failure = assert_fails(C.test_auxk_loss, _auxk_per_example_dead, "auxk_dead_ignored")
    assert "ignores the `dead` argument" in failure.hint


def test_l0_every_latent_named():
    failure = assert_fails(C.test_l0_norm, lambda a: (a.abs() ** 0).sum(-1).mean(0), "counted_every_latent")
    assert "7 = d_sae: every latent counted" in failure.hint and "0 ** 0" in failure.hint
    assert_fails(C.test_l0_norm, lambda a: (a >= 0).to(a.dtype).sum(-1).mean(0), "counted_every_latent")


def test_fve_mean_divisor_and_shortcut_named():
    def divided_by_d_in(h, r):
        return 1 - (h - r).pow(2).sum((0, 2)) / (h - h.sum(0, keepdim=True) / h.shape[-1]).pow(2).sum((0, 2))

    def shortcut(h, r):
        return 1 - (h - r).pow(2).sum((0, 2)) / (h.pow(2).sum((0, 2)) - h.mean(0).pow(2).sum(-1))

    def shortcut_right(h, r):
        return 1 - (h - r).pow(2).sum((0, 2)) / (h.pow(2).sum((0, 2)) - h.shape[0] * h.mean(0).pow(2).sum(-1))

    failure = assert_fails(C.test_fraction_variance_explained, divided_by_d_in, "mean_divisor")
    assert "by d_in (4)" in failure.hint
    failure = assert_fails(C.test_fraction_variance_explained, shortcut, "shortcut_factor")
    assert "× batch factor forgotten" in failure.hint
    assert_passes(C.test_fraction_variance_explained, shortcut_right)


def _greedy_recovery(Wf, Wd):
    a, b = Wf / Wf.norm(dim=1, keepdim=True), Wd / Wd.norm(dim=-1, keepdim=True)
    cos = einops.einsum(b, a, "i s d, i d f -> i s f")
    out = cos.amax(1).clone()
    for i in range(cos.shape[0]):
        c = cos[i].clone()
        for _ in range(min(c.shape)):
            s, f = divmod(int(c.argmax()), c.shape[1])
            out[i, f] = cos[i, s, f]
            c[s, :], c[:, f] = -torch.inf, -torch.inf
    return out


def test_recovery_one_to_one_named():
    failure = assert_fails(C.test_feature_recovery, _greedy_recovery, "one_to_one_matching")
    assert "one latent may serve several features" in failure.hint


def test_dead_isclose_named_and_exact_forms_pass():
    def isclose(a):
        return torch.isclose(a, torch.zeros_like(a)).all(0).to(a.dtype).mean(-1)

    failure = assert_fails(C.test_dead_latent_fraction, isclose, "zero_tolerance")
    assert "|a| ≤ 1e-8 counted dead" in failure.hint and "== 0" in failure.hint
    for right in (
        lambda a: (a == 0).all(0).to(a.dtype).mean(-1),
        lambda a: 1 - (a.abs() > 0).any(0).to(a.dtype).mean(-1),
        lambda a: (torch.count_nonzero(a, dim=0) == 0).to(a.dtype).mean(-1),
        lambda a: (a.norm(dim=0) == 0).to(a.dtype).mean(-1),
        lambda a: (a.amax(0) == 0).to(a.dtype).mean(-1),
        lambda a: (a.sum(0) == 0).to(a.dtype).mean(-1),  # activations are never negative (the docstring)
    ):
        assert_passes(C.test_dead_latent_fraction, right)
