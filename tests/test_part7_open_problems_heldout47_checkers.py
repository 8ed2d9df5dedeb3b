"""Proofs for section 7 (round AV): compute_target's argmax reading "no label" as a constant row (max == min) is
caught on an all-present binary row and a single feature; cross_entropy_loss writing into the caller's labels is
named as an in-place edit; a float32 loss from float64 inputs is caught on a float64 call; and the round's correct
variants pass."""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import tests.part7_open_problems as checks
from tests.proving import assert_fails, assert_passes
from utils.part7_open_problems import NO_LABEL


def _ct(features, target, over=None):
    if over and target in over:
        return over[target](features)
    if target == "identity":
        return features.clone()
    if target == "abs":
        return features.abs()
    if target == "square":
        return features**2
    if target == "argmax":
        return torch.where((features != 0).any(-1), features.argmax(-1), NO_LABEL)
    a, b = features[..., 0::2], features[..., 1::2]
    if target == "max_pairs":
        return torch.maximum(a, b)
    if target == "and_pairs":
        return ((a != 0) & (b != 0)).to(features.dtype)
    if target == "or_pairs":
        return ((a != 0) | (b != 0)).to(features.dtype)
    raise ValueError(target)


def _ct_argmax_max_eq_min(features, target):
    rule = {"argmax": lambda f: torch.where(f.amax(-1) == f.amin(-1), NO_LABEL, f.argmax(-1))}
    return _ct(features, target, over=rule)


def _ct_identity_detached_correct(features, target):
    return _ct(features, target, over={"identity": lambda f: f.detach().clone()})


def _ct_einops_correct(features, target):
    if target == "argmax":
        lab = features.argmax(-1)
        lab[features.count_nonzero(-1) == 0] = NO_LABEL
        return lab
    elementwise = {"identity": lambda f: f + 0, "abs": torch.abs, "square": torch.square}
    if target in elementwise:
        return elementwise[target](features)
    pairs = einops.rearrange(features, "... (n two) -> ... n two", two=2)
    nz = pairs != 0
    if target == "max_pairs":
        return einops.reduce(pairs, "... n two -> ... n", "max")
    if target == "and_pairs":
        return nz.all(-1).to(features.dtype)
    if target == "or_pairs":
        return nz.any(-1).to(features.dtype)
    raise ValueError(target)


def _ce(logits, labels, importance, mutate=False):
    valid = labels != NO_LABEL
    if mutate:
        labels[~valid] = 0
        index = labels[..., None]
    else:
        index = labels.clamp(min=0)[..., None]
    nll = -logits.log_softmax(dim=-1).gather(-1, index)[..., 0]
    w = importance.expand_as(logits).gather(-1, index)[..., 0]
    return (torch.where(valid, w * nll, 0.0).sum(0) / valid.sum(0).clamp(min=1)).sum()


def _ce_float_cast(logits, labels, importance):
    return _ce(logits.float(), labels, importance.float())


def _ce_labels_mutated(logits, labels, importance):
    return _ce(logits, labels, importance, mutate=True)


def _ce_nanmean_correct(logits, labels, importance):
    B, n_i, C = logits.shape
    valid = labels >= 0
    nll = F.nll_loss(
        logits.log_softmax(-1).reshape(B * n_i, C), labels.reshape(-1), reduction="none", ignore_index=NO_LABEL
    ).reshape(B, n_i)
    w = importance[torch.arange(n_i, device=labels.device)[None, :], labels.clamp(min=0)]
    per = torch.where(valid, w * nll, torch.nan).nanmean(0)
    return torch.nan_to_num(per, nan=0.0).sum()


def test_argmax_constant_row_caught():
    failure = assert_fails(checks.test_compute_target, _ct_argmax_max_eq_min, "constant_rows")
    assert "[1.0, 1.0, 1.0, 1.0]" in str(failure) and "max == min" in failure.hint


def test_labels_edited_in_place_named():
    failure = assert_fails(checks.test_cross_entropy_loss, _ce_labels_mutated, "in_place")
    assert "`labels` in place" in str(failure)


def test_float32_loss_from_float64_inputs_caught():
    failure = assert_fails(checks.test_cross_entropy_loss, _ce_float_cast, "dtype")
    assert "float64 logits" in str(failure) and ".float()" in failure.hint


def test_round_correct_variants_pass():
    assert_passes(checks.test_compute_target, _ct_identity_detached_correct)
    assert_passes(checks.test_compute_target, _ct_einops_correct)
    assert_passes(checks.test_cross_entropy_loss, _ce_nanmean_correct)
