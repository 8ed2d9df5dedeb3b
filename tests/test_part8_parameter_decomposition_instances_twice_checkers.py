"""Proof: a faithfulness loss whose sum over instances is taken twice (× n_inst) is read as such."""

from __future__ import annotations

import solutions.part8_parameter_decomposition as sol8
import tests.part8_parameter_decomposition as checks8
from tests.proving import assert_fails


def test_faithfulness_sum_over_instances_twice_named():
    f = lambda weights, U, V: sol8.faithfulness_loss(weights, U, V) * weights[0].shape[0]
    assert "taken twice" in assert_fails(checks8.test_faithfulness_loss, f, "scale").hint
