"""Proofs for part 7's compute_target("argmax") on rows whose present values are all negative (max over the features
is 0, from an absent one): NO_LABEL there is named; either reading of "largest" there (an absent 0, or the largest
present value) passes."""

from __future__ import annotations

import torch

import solutions.part7_open_problems as sol
import tests.part7_open_problems as checks
from tests.proving import assert_fails, assert_passes
from utils.part7_open_problems import NO_LABEL


def _with_argmax(argmax):
    def compute_target(features, target):
        return argmax(features) if target == "argmax" else sol.compute_target(features, target)

    return compute_target


def test_no_label_where_the_max_is_zero_is_named():
    fn = _with_argmax(lambda x: torch.where(x.max(-1).values != 0, x.argmax(-1), NO_LABEL))
    failure = assert_fails(checks.test_compute_target, fn, code="argmax_negative_present")
    assert "!= 0" in failure.hint


def test_presence_tests_and_the_present_only_reading_pass():
    full = lambda x: torch.full_like(x[..., 0], NO_LABEL, dtype=torch.long)
    assert_passes(
        checks.test_compute_target, _with_argmax(lambda x: torch.where(x.abs().amax(-1) > 0, x.argmax(-1), full(x)))
    )
    present_only = lambda x: torch.where((x != 0).any(-1), x.masked_fill(x == 0, float("-inf")).argmax(-1), NO_LABEL)
    assert_passes(checks.test_compute_target, _with_argmax(present_only))
