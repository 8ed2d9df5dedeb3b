"""Proofs for the round AJ (fresh35) part 7 cases: max_pairs by the larger |x|, argmax with negatives read as 0,
a per-instance mean with // (a whole-number loss), importance · log_softmax summed over every class, −log sigmoid
for −log softmax, a mean-|W| denominator and a √d_hidden factor in basis_alignment."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import solutions.part7_open_problems as ref
import tests.part7_open_problems as checks
from tests.proving import assert_fails
from utils.part7_open_problems import NO_LABEL


def _target(max_pairs=None, argmax=None):
    def compute_target(x, target):
        a, b = x[..., 0::2], x[..., 1::2]
        if target == "max_pairs" and max_pairs is not None:
            return max_pairs(a, b)
        if target == "argmax" and argmax is not None:
            return torch.where((x != 0).any(-1), argmax(x), NO_LABEL)
        return ref.compute_target(x, target)

    return compute_target


def test_max_pairs_by_magnitude():
    impl = _target(max_pairs=lambda a, b: torch.where(a.abs() >= b.abs(), a, b))
    failure = assert_fails(checks.test_compute_target, impl, "max_pairs_magnitude")
    assert "larger |x|" in failure.hint


def test_argmax_negatives_as_zero():
    impl = _target(argmax=lambda x: x.clamp(min=0).argmax(-1))
    failure = assert_fails(checks.test_compute_target, impl, "argmax_negatives_as_zero")
    assert "all negative" in failure.hint


def _loss(per_example, divide=lambda s, n: s / n):
    def cross_entropy_loss(logits, labels, importance):
        valid = labels != NO_LABEL
        safe = labels.clamp(min=0)
        w = importance.expand_as(logits).gather(-1, safe[..., None])[..., 0]
        term = torch.where(valid, per_example(logits, safe, importance, w), 0.0)
        return divide(term.sum(0), valid.sum(0).clamp(min=1)).sum()

    return cross_entropy_loss


def _nll(log_probs, safe):
    return -log_probs.gather(-1, safe[..., None])[..., 0]


def test_floor_division_whole_number():
    impl = _loss(lambda z, y, imp, w: w * _nll(z.log_softmax(-1), y), divide=lambda s, n: s // n)
    failure = assert_fails(checks.test_cross_entropy_loss, impl, "whole_number")
    assert "`//`" in failure.hint


def test_no_gather_at_label():
    impl = _loss(lambda z, y, imp, w: -(imp * z.log_softmax(-1)).sum(-1))
    failure = assert_fails(checks.test_cross_entropy_loss, impl, "no_gather")
    assert "every class" in failure.hint


def test_log_sigmoid():
    impl = _loss(lambda z, y, imp, w: w * _nll(F.logsigmoid(z), y))
    failure = assert_fails(checks.test_cross_entropy_loss, impl, "log_sigmoid")
    assert "sigmoid" in failure.hint


def _alignment(fn):
    def basis_alignment(W):
        norm = W.norm(dim=1)
        return torch.where(norm > 0, fn(W), 0.0)

    return basis_alignment


def test_mean_abs_denominator():
    impl = _alignment(lambda W: W.abs().amax(1) / W.abs().mean(1).clamp(min=1e-12))
    failure = assert_fails(checks.test_basis_alignment, impl, "mean_abs_denominator")
    assert "mean of |W_ki|" in failure.hint


def test_root_hidden_factor():
    impl = _alignment(lambda W: W.abs().amax(1) / W.norm(dim=1).clamp(min=1e-12) * W.shape[1] ** 0.5)
    failure = assert_fails(checks.test_basis_alignment, impl, "root_hidden_factor")
    assert "√d_hidden" in failure.hint
