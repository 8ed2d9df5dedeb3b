"""Proofs for part 5a's AuxK and metric checkers: the reference and correct variants written differently pass,
realistic mistakes fail with their own code."""

from __future__ import annotations

import einops
import pytest
import torch
import torch.nn.functional as F

import solutions.part5a_sae_architectures as A
import tests.part5a_sae_architectures as checks
from tests.proving import assert_fails, assert_not_done, assert_passes, stub


# --------------------------------------------------------------------------------------------
# AuxK
# --------------------------------------------------------------------------------------------
def _auxk(**bug):
    def auxk_loss(pre, residual, dead, W_dec, k_aux):
        x = pre.relu() if bug.get("relu") else pre
        x = x.detach() if bug.get("detach") else x
        mask = {"inverted": ~dead, "first": dead[0].expand_as(dead)}.get(bug.get("mask"), dead)
        masked = x if bug.get("live") else torch.where(mask, x, torch.full_like(x, bug.get("fill", -torch.inf)))
        if bug.get("all_dead"):
            acts = torch.where(dead, x, torch.zeros_like(x))
        else:
            dim = bug.get("dim", -1)
            score = torch.where(mask, x.abs(), -torch.inf) if bug.get("by_abs") else masked
            idx = score.topk(k_aux + bug.get("extra", 0), dim=dim).indices
            values = masked.gather(dim, idx)
            if not bug.get("keep_inf"):
                values = torch.nan_to_num(values, neginf=0.0)
            if bug.get("sentinel"):
                values = torch.where(values < -1e8, -1e9, values)
            acts = (pre.clone() if bug.get("into_pre") else torch.zeros_like(x)).scatter(dim, idx, values)
        rec = torch.einsum("bis,isd->bid", acts, W_dec)
        err = (residual + rec if bug.get("plus") else residual - rec).pow(2)
        out = err.sum(-1) if bug.get("sum") else err.mean(-1)
        out = (residual - rec).norm(dim=-1) if bug.get("norm") else out
        return out.mean(0) if bug.get("batch_mean") else out

    return auxk_loss


def _auxk_loop(pre, residual, dead, W_dec, k_aux):
    per_inst = []
    for i in range(pre.shape[1]):
        idx = dead[i].nonzero().squeeze(-1)
        acts = torch.zeros_like(pre[:, i])
        if idx.numel() > 0:
            top = pre[:, i, idx].topk(min(k_aux, idx.numel()), dim=-1)
            acts = acts.scatter(-1, idx[top.indices], top.values)
        per_inst.append((residual[:, i] - acts @ W_dec[i]).pow(2).mean(-1))
    return torch.stack(per_inst, dim=1)


def _auxk_sort(pre, residual, dead, W_dec, k_aux):
    masked = pre.masked_fill(~dead, float("-inf"))
    kth = masked.sort(dim=-1, descending=True).values[..., k_aux - 1 : k_aux]
    keep = dead & (masked >= kth)
    acts = pre * keep
    return ((residual - einops.einsum(acts, W_dec, "b i s, i s d -> b i d")) ** 2).mean(-1)


AUXK_BUGS = [  # (code, buggy auxk_loss)
    ("dropped_negatives", _auxk(relu=True)),
    ("dropped_negatives", _auxk(fill=0.0)),
    ("used_live_latents", _auxk(live=True)),
    ("inverted_mask", _auxk(mask="inverted")),
    ("first_instance_mask", _auxk(mask="first")),
    ("sum_over_d_in", _auxk(sum=True)),
    ("all_dead_latents", _auxk(all_dead=True)),
    ("k_off_by_one", _auxk(extra=1)),
    ("by_abs", _auxk(by_abs=True)),
    ("wrong_axis", _auxk(dim=0)),
    ("scattered_into_pre", _auxk(into_pre=True)),
    ("sign_flip", _auxk(plus=True)),
    ("inf", _auxk(keep_inf=True)),
    ("no_grad", _auxk(detach=True)),
    ("reduced_batch", _auxk(batch_mean=True)),
    ("norm_not_mse", _auxk(norm=True)),
    ("sentinel_decoded", _auxk(fill=-1e9, sentinel=True)),
]


@pytest.mark.parametrize("fn", [A.auxk_loss, _auxk(), _auxk_loop, _auxk_sort])
def test_auxk_variants(fn):
    assert_passes(checks.test_auxk_loss, fn)


@pytest.mark.parametrize(("code", "fn"), AUXK_BUGS, ids=[f"{c}-{i}" for i, (c, _) in enumerate(AUXK_BUGS)])
def test_auxk_bugs(code, fn):
    assert_fails(checks.test_auxk_loss, fn, code)


def test_auxk_stub():
    assert_not_done(checks.test_auxk_loss, stub)


# --------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------
def _fve_loop(h, r):
    out = []
    for k in range(h.shape[1]):
        resid = ((h[:, k] - r[:, k]) ** 2).sum()
        out.append(1 - resid / ((h[:, k] - h[:, k].mean(0)) ** 2).sum())
    return torch.stack(out)


METRIC_CASES = {
    "l0_norm": (
        checks.test_l0_norm,
        [
            A.l0_norm,
            lambda a: (a > 0).float().sum(-1).mean(0),
            lambda a: torch.count_nonzero(a, dim=-1).float().mean(0),
            lambda a: einops.reduce((a != 0).float(), "b i s -> i", "sum") / a.shape[0],
        ],
        {
            "fraction": lambda a: (a > 0).float().mean((0, 2)),
            "l1": lambda a: a.sum(-1).mean(0),
            "batch_sum": lambda a: (a > 0).float().sum((0, 2)),
            "counted_zeros": lambda a: (a == 0).float().sum(-1).mean(0),
            "axes_swapped": lambda a: (a > 0).float().sum(0).mean(-1),
            "alive_count": lambda a: (a.sum(0) > 0).float().sum(-1),
            "max_not_mean": lambda a: (a > 0).float().sum(-1).max(0).values,
            "no_batch_mean": lambda a: (a > 0).float().sum(-1),
            "thresholded": lambda a: (a > 1e-3).float().sum(-1).mean(0),
            "int_mean": lambda a: (a != 0).sum(-1).mean(0),
            "any_active": lambda a: (a != 0).any(-1).float().mean(0),
            "wrong_axes": lambda a: (a != 0).float().sum(0).mean(0),
        },
    ),
    "fraction_variance_explained": (
        checks.test_fraction_variance_explained,
        [
            A.fraction_variance_explained,
            lambda h, r: 1 - F.mse_loss(r, h, reduction="none").sum((0, 2)) / ((h - h.mean(0)) ** 2).sum((0, 2)),
            lambda h, r: 1 - ((h - r) ** 2).mean((0, 2)) / h.var(0, unbiased=False).mean(-1),
            _fve_loop,
        ],
        {
            "not_centered": lambda h, r: 1 - ((h - r) ** 2).sum((0, 2)) / (h**2).sum((0, 2)),
            "fvu": lambda h, r: ((h - r) ** 2).sum((0, 2)) / ((h - h.mean(0)) ** 2).sum((0, 2)),
            "per_dim": lambda h, r: (1 - ((h - r) ** 2).sum(0) / ((h - h.mean(0)) ** 2).sum(0)).mean(-1),
            "ratio_of_means": lambda h, r: 1 - (((h - r) ** 2).sum(-1) / ((h - h.mean(0)) ** 2).sum(-1)).mean(0),
            "centred_wrong_axis": lambda h, r: (
                1 - ((h - r) ** 2).sum((0, 2)) / ((h - h.mean(-1, True)) ** 2).sum((0, 2))
            ),
            "unbiased_variance": lambda h, r: 1 - ((h - r) ** 2).mean((0, 2)) / h.var(0).mean(-1),
            "centred_scalar_mean": lambda h, r: 1 - ((h - r) ** 2).sum((0, 2)) / ((h - h.mean()) ** 2).sum((0, 2)),
            "abs_residual": lambda h, r: 1 - (h - r).abs().sum((0, 2)) / ((h - h.mean(0)) ** 2).sum((0, 2)),
            "variance_of_reconstruction": lambda h, r: (
                1 - ((h - r) ** 2).sum((0, 2)) / ((r - r.mean(0)) ** 2).sum((0, 2))
            ),
            "reduced_instances": lambda h, r: 1 - ((h - r) ** 2).sum() / ((h - h.mean(0)) ** 2).sum(),
            "per_dim_unreduced": lambda h, r: 1 - ((h - r) ** 2).sum(0) / ((h - h.mean(0)) ** 2).sum(0),
            "sum_over_variance": lambda h, r: 1 - ((h - r) ** 2).sum((0, 2)) / h.var(0).sum(-1),
            "variance_ratio": lambda h, r: ((r - r.mean(0)) ** 2).sum((0, 2)) / ((h - h.mean(0)) ** 2).sum((0, 2)),
        },
    ),
    "dead_latent_fraction": (
        checks.test_dead_latent_fraction,
        [
            A.dead_latent_fraction,
            lambda a: 1 - (a > 0).any(0).float().mean(-1),
            lambda a: (a.abs().sum(0) == 0).sum(-1) / a.shape[-1],
            lambda a: (a.max(0).values <= 0).float().mean(-1),
        ],
        {
            "count": lambda a: (a == 0).all(0).float().sum(-1),
            "any": lambda a: (a == 0).any(0).float().mean(-1),
            "zero_entries": lambda a: (a == 0).float().mean((0, 2)),
            "alive_fraction": lambda a: (a > 0).any(0).float().mean(-1),
            "rate_threshold": lambda a: ((a > 0).float().mean(0) < 1e-3).float().mean(-1),
            "single_example": lambda a: (a[-1] == 0).float().mean(-1),
            "per_latent": lambda a: (a == 0).all(0).float(),
            "divided_by_batch": lambda a: (a.sum(0) == 0).float().sum(-1) / a.shape[0],
            "int_mean": lambda a: (a == 0).all(0).mean(-1),
            "activity_threshold": lambda a: (a.mean(0) < 1e-6).float().mean(-1),
            "wrong_axes": lambda a: (a == 0).all(0).float().mean(0),
        },
    ),
    "feature_recovery": (
        checks.test_feature_recovery,
        [
            A.feature_recovery,
            lambda Wf, Wd: torch.einsum("isd,idf->isf", F.normalize(Wd, dim=-1), F.normalize(Wf, dim=1)).amax(1),
            lambda Wf, Wd: F.cosine_similarity(Wd[:, :, :, None], Wf[:, None, :, :], dim=2).max(1).values,
            lambda Wf, Wd: torch.stack(
                [(F.normalize(Wd[k], dim=1) @ F.normalize(Wf[k], dim=0)).max(0).values for k in range(Wf.shape[0])]
            ),
        ],
        {
            "abs": lambda Wf, Wd: F.cosine_similarity(Wd[:, :, :, None], Wf[:, None], dim=2).abs().max(1).values,
            "mean": lambda Wf, Wd: F.cosine_similarity(Wd[:, :, :, None], Wf[:, None], dim=2).mean(1),
            "min": lambda Wf, Wd: F.cosine_similarity(Wd[:, :, :, None], Wf[:, None], dim=2).min(1).values,
            "squared": lambda Wf, Wd: (F.cosine_similarity(Wd[:, :, :, None], Wf[:, None], dim=2) ** 2).max(1).values,
            "unnormalized_dec": lambda Wf, Wd: torch.einsum("isd,idf->isf", Wd, F.normalize(Wf, dim=1)).max(1).values,
            "unnormalized_feat": lambda Wf, Wd: torch.einsum("isd,idf->isf", F.normalize(Wd, dim=-1), Wf).amax(1),
            "unnormalized_both": lambda Wf, Wd: torch.einsum("isd,idf->isf", Wd, Wf).amax(1),
            "feat_norm_axis": lambda Wf, Wd: (
                torch.einsum("isd,idf->isf", F.normalize(Wd, dim=-1), F.normalize(Wf, dim=-1)).max(1).values
            ),
            "dec_norm_axis": lambda Wf, Wd: (
                torch.einsum("isd,idf->isf", F.normalize(Wd, dim=1), F.normalize(Wf, dim=1)).max(1).values
            ),
            "max_over_features": lambda Wf, Wd: (
                F.cosine_similarity(Wd[:, :, :, None], Wf[:, None], dim=2).max(2).values
            ),
            "returned_indices": lambda Wf, Wd: (
                F.cosine_similarity(Wd[:, :, :, None], Wf[:, None], dim=2).max(1).indices
            ),
            "max_over_instances": lambda Wf, Wd: torch.einsum(
                "isd,idf->isf", F.normalize(Wd, dim=-1), F.normalize(Wf, dim=1)
            ).amax(0),
            "global_norm": lambda Wf, Wd: torch.einsum("isd,idf->isf", Wd / Wd.norm(), F.normalize(Wf, dim=1)).amax(1),
        },
    ),
}


@pytest.mark.parametrize(
    ("name", "i"), [(name, i) for name, (_, good, _) in METRIC_CASES.items() for i in range(len(good))]
)
def test_metric_variants(name, i):
    check, good, _ = METRIC_CASES[name]
    assert_passes(check, good[i])


@pytest.mark.parametrize(
    ("name", "code"), [(name, code) for name, (_, _, bugs) in METRIC_CASES.items() for code in bugs]
)
def test_metric_bugs(name, code):
    check, _, bugs = METRIC_CASES[name]
    assert_fails(check, bugs[code], code)


@pytest.mark.parametrize("name", list(METRIC_CASES))
def test_metric_stubs_and_wrong_objects(name):
    assert_not_done(METRIC_CASES[name][0], stub)
    assert_fails(METRIC_CASES[name][0], type("NotAFunction", (), {}), "not_a_function")
