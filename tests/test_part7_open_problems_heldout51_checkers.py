"""Proofs for section 7 (round AX): compute_target's inputs hold present values far below 1 (a pair 2e-12, 3e-12 and
an argmax row of 2e-7, 5e-7), so a presence tolerance |x| > 1e-6 is caught, named by read-back (code tiny_values),
while an AND read off the product `a * b != 0` (right on every value the features take) still passes;
cross_entropy_loss's gather index of the wrong shape, which reads every instance's labels from instance 0's
log-probabilities, is named (code instance0_logits); the correct variants of the round still pass."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import tests.part7_open_problems as checks
from solutions import part7_open_problems as ref
from tests.proving import assert_fails, assert_passes

NO_LABEL = ref.NO_LABEL


def ct_and_product_nonzero(features, target):
    if target == "and_pairs":
        first, second = features[..., 0::2], features[..., 1::2]
        return ((first * second) != 0).to(features.dtype)
    return ref.compute_target(features, target)


def ct_argmax_tolerance(features, target):
    if target == "argmax":
        any_present = features.abs().amax(-1) > 1e-6
        return torch.where(any_present, features.argmax(-1), NO_LABEL)
    return ref.compute_target(features, target)


def ct_unflatten_count_nonzero(features, target):
    if target in ("and_pairs", "or_pairs", "max_pairs"):
        pairs = features.unflatten(-1, (-1, 2))
        if target == "max_pairs":
            return pairs.amax(-1)
        present = pairs != 0
        rule = present.all(-1) if target == "and_pairs" else present.any(-1)
        return rule.to(features.dtype)
    if target == "argmax":
        return torch.where(torch.count_nonzero(features, dim=-1) > 0, features.argmax(-1), NO_LABEL)
    return ref.compute_target(features, target)


def ce_gather_unsqueeze_axis1(logits, labels, importance):
    valid = labels != NO_LABEL
    idx = labels.clamp(min=0).unsqueeze(1)  # [B, 1, I] instead of [B, I, 1]
    logp = logits.log_softmax(-1)
    nll = -logp.gather(-1, idx).squeeze(1)
    w = importance.expand_as(logits).gather(-1, labels.clamp(min=0)[..., None])[..., 0]
    return (torch.where(valid, w * nll, 0.0).sum(0) / valid.sum(0).clamp(min=1)).sum()


def ce_abs_labels_correct(logits, labels, importance):
    valid = labels >= 0
    safe = labels.abs()  # -1 -> 1, masked out below
    nll = F.cross_entropy(logits.permute(0, 2, 1), safe, reduction="none")
    w = importance.gather(1, safe.T).T
    num = (w * nll * valid).sum(0)
    return (num / valid.sum(0).clamp(min=1)).sum()


def test_and_from_the_product_still_passes_on_tiny_pairs():
    assert_passes(checks.test_compute_target, ct_and_product_nonzero)


def test_and_with_a_presence_tolerance_is_caught_on_the_tiny_pair():
    def and_tolerance(features, target):
        if target == "and_pairs":
            first, second = features[..., 0::2], features[..., 1::2]
            return ((first.abs() > 1e-6) & (second.abs() > 1e-6)).to(features.dtype)
        return ref.compute_target(features, target)

    err = assert_fails(checks.test_compute_target, and_tolerance, "tiny_values")
    assert "presence test |x| > t" in err.hint and "from 1e-09 to 0.001" in err.hint


def test_argmax_presence_tolerance_is_caught_and_read_back():
    assert_fails(checks.test_compute_target, ct_argmax_tolerance, "tiny_values")


def test_gather_index_on_the_wrong_axis_is_named():
    assert_fails(checks.test_cross_entropy_loss, ce_gather_unsqueeze_axis1, "instance0_logits")


def test_correct_variants_pass():
    assert_passes(checks.test_compute_target, ct_unflatten_count_nonzero)
    assert_passes(checks.test_cross_entropy_loss, ce_abs_labels_correct)
