"""Proofs for part 7's checkers, second file: mistakes from the held-out trials (and correct variants)."""

from __future__ import annotations

import pytest
import torch

import solutions.part7_open_problems as ref
import tests.part7_open_problems as checks
from tests.proving import assert_fails, assert_passes
from utils.part7_open_problems import NO_LABEL


def target_with(target, fn):
    def compute_target(features, which):
        return fn(features) if which == target else ref.compute_target(features, which)

    return compute_target


def argmax_present_only(x):  # correct: the largest among present features (absent ones masked out)
    masked = torch.where(x != 0, x, -torch.inf)
    return torch.where((x != 0).any(-1), masked.argmax(-1), NO_LABEL)


def argmax_positive_only(x):
    return torch.where(x.amax(-1) > 0, x.argmax(-1), NO_LABEL)


def argmax_of_abs(x):
    return torch.where((x != 0).any(-1), x.abs().argmax(-1), NO_LABEL)


def ce_pooled_times_instances(logits, labels, importance):
    valid = labels != NO_LABEL
    idx = labels.clamp(min=0)[..., None]
    nll = -logits.log_softmax(-1).gather(-1, idx)[..., 0]
    w = importance.expand_as(logits).gather(-1, idx)[..., 0]
    return torch.where(valid, w * nll, 0.0).sum() / valid.sum().clamp(min=1) * logits.shape[1]


def ce_median_of_instances(logits, labels, importance):  # an unlisted way to combine the instances
    valid = labels != NO_LABEL
    idx = labels.clamp(min=0)[..., None]
    nll = -logits.log_softmax(-1).gather(-1, idx)[..., 0]
    w = importance.expand_as(logits).gather(-1, idx)[..., 0]
    per_inst = torch.where(valid, w * nll, 0.0).sum(0) / valid.sum(0).clamp(min=1)
    return per_inst.max() * logits.shape[1]


def align_denominator_over_features(W):
    return torch.where(W.norm(dim=1) > 0, W.abs().amax(1) / W.norm(dim=2).amax(-1, keepdim=True), 0.0)


def align_numerator_over_instances(W):
    norm = W.norm(dim=1)
    return torch.where(norm > 0, W.abs().amax(0, keepdim=True).amax(1) / norm.clamp(min=1e-12), 0.0)


def test_compute_target_accepts_argmax_among_present_features():
    assert_passes(checks.test_compute_target, target_with("argmax", argmax_present_only))


MISTAKES = [
    ("T", target_with("argmax", argmax_positive_only), "argmax_positive_only"),
    ("T", target_with("argmax", argmax_of_abs), "argmax_abs"),
    ("L", ce_pooled_times_instances, "pooled_times_instances"),
    ("L", ce_median_of_instances, "instances_combined"),
    ("A", align_denominator_over_features, "denominator_over_features"),
    ("A", align_numerator_over_instances, "numerator_over_instances"),
]
CHECKS = {"T": checks.test_compute_target, "L": checks.test_cross_entropy_loss, "A": checks.test_basis_alignment}


@pytest.mark.parametrize(("kind", "impl", "code"), MISTAKES, ids=[code for _, _, code in MISTAKES])
def test_heldout_mistakes_are_named(kind, impl, code):
    assert_fails(CHECKS[kind], impl, code)


# Fresh2 measurement: (values, indices) returned, discrete values shared,
# importance averaged, abs after the max, NO_LABEL from the row sum.
def gen_discrete_per_example(p, n, values="uniform"):
    shape = (n, *p.shape)
    present = torch.rand(shape) < p
    if values == "discrete":
        v = torch.randint(1, 4, (n, 1, 1)).float().expand(shape)
    elif values == "uniform":
        v = torch.rand(shape)
    elif values == "uniform_half":
        v = 0.5 + 0.5 * torch.rand(shape)
    elif values == "signed_uniform":
        v = 2 * torch.rand(shape) - 1
    else:
        v = torch.ones(shape)
    return torch.where(present, v, 0.0)


def ce_mean_importance(logits, labels, importance):
    valid = labels != NO_LABEL
    nll = -logits.log_softmax(-1).gather(-1, labels.clamp(min=0)[..., None])[..., 0]
    w = importance.mean(-1).expand_as(nll)
    return (torch.where(valid, w * nll, 0.0).sum(0) / valid.sum(0).clamp(min=1)).sum()


FRESH2 = [
    ("F", gen_discrete_per_example, "values_shared_over_features"),
    ("T", target_with("max_pairs", lambda x: x.unflatten(-1, (-1, 2)).max(-1)), "return_types"),
    ("T", target_with("argmax", lambda x: torch.where(x.sum(-1) != 0, x.argmax(-1), NO_LABEL)), "argmax_sum_zero"),
    ("L", ce_mean_importance, "importance_mean"),
    (
        "A",
        lambda W: torch.where(W.norm(dim=1) > 0, W.amax(1).abs() / W.norm(dim=1).clamp(min=1e-12), 0.0),
        "abs_after_max",
    ),
]
CHECKS["F"] = checks.test_generate_features


@pytest.mark.parametrize(("kind", "impl", "code"), FRESH2, ids=[code for _, _, code in FRESH2])
def test_fresh2_mistakes_are_named(kind, impl, code):
    assert_fails(CHECKS[kind], impl, code)


def test_compute_target_int32_labels():  # fresh3: an integer dtype other than int64 gets the int64 hint
    impl = target_with("argmax", lambda x: ref.compute_target(x, "argmax").int())
    assert_fails(checks.test_compute_target, impl, "dtype")


# fourth fresh measurement: round(3·rand) for the discrete values (checked before the presence rate, which the
# zeros lower); the mean importance times the mean NLL
def features_rounded(p, n, values="uniform"):
    out = ref.generate_features(p, n, values)
    if values != "discrete":
        return out
    return torch.where(torch.rand(out.shape) < p, (3 * torch.rand(out.shape)).round(), 0.0)


def ce_importance_averaged_apart(logits, labels, importance):
    valid = labels != NO_LABEL
    idx = labels.clamp(min=0)[..., None]
    nll = -logits.log_softmax(-1).gather(-1, idx)[..., 0]
    w = importance.expand_as(logits).gather(-1, idx)[..., 0]
    n = valid.sum(0).clamp(min=1)
    return ((torch.where(valid, w, 0.0).sum(0) / n) * (torch.where(valid, nll, 0.0).sum(0) / n)).sum()


def test_fresh4_mistakes_are_named():
    assert_fails(checks.test_generate_features, features_rounded, "discrete_rounded")
    assert_fails(checks.test_cross_entropy_loss, ce_importance_averaged_apart, "importance_averaged_apart")


# fresh7: class 0 dropped with the unlabelled, a third of the signed values zeroed (the presence rate then falls by
# a constant factor: both causes listed), small columns zeroed by a threshold; a correct + eps alignment passes
def ce_class0_dropped(logits, labels, importance):
    return ref.cross_entropy_loss(logits, torch.where(labels > 0, labels, NO_LABEL), importance)


def features_sign_randint(p, n, values="uniform"):
    out = ref.generate_features(p, n, values)
    if values != "signed_uniform":
        return out
    return out.abs() * torch.randint(-1, 2, out.shape).to(out.dtype)


def align_threshold(W):
    norms = W.norm(dim=1)
    return torch.where(norms > 1e-3, W.abs().amax(1) / norms.clamp(min=1e-12), 0.0)


def align_plus_eps(W):  # correct: an epsilon far below the norms
    return W.abs().amax(1) / (W.norm(dim=1) + 1e-8)


def test_fresh7_mistakes_are_named():
    assert_fails(checks.test_cross_entropy_loss, ce_class0_dropped, "class0_dropped")
    assert_fails(checks.test_generate_features, features_sign_randint, "presence")
    assert_fails(checks.test_basis_alignment, align_threshold, "small_column")
    assert_passes(checks.test_basis_alignment, align_plus_eps)
