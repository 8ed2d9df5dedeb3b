"""Proofs for part 6's top_activations on activations far below zero: position 0 masked with a finite value (-1e4)
outranks real entries near -1e6 and is named; -inf and a mask below every entry pass."""

from __future__ import annotations

import tests.part6_lm_saes as checks
from tests.proving import assert_fails


def _masked_with(value):
    def impl(acts, k):
        m = acts.clone()
        m[:, 0] = value
        v, i = m.flatten().topk(k)
        return v, i // acts.shape[1], i % acts.shape[1]

    return impl


def test_a_finite_mask_of_minus_1e4_is_named():
    failure = assert_fails(checks.test_top_activations, _masked_with(-1e4), "bos_mask_not_lowest")
    assert "a finite mask value (-10000) beats entries below it" in failure.hint
    assert "float('-inf')" in failure.hint


def test_minus_inf_passes():
    checks.test_top_activations(_masked_with(-float("inf")))


def test_a_mask_below_the_minimum_passes():
    def impl(acts, k):
        m = acts.clone()
        m[:, 0] = acts.min() - 1
        v, i = m.flatten().topk(k)
        return v, i // acts.shape[1], i % acts.shape[1]

    checks.test_top_activations(impl)
