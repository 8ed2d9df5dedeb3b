"""Proofs for part 5b after the fresh27 measurement: absorption carriers chosen with a threshold relative to the
parent's best cosine (cos >= cos_threshold * max cos) are named by the carrier probe, now also run when the random
inputs fail with bare values."""

from __future__ import annotations

import inspect
import textwrap

import solutions.part5b_absorption as S
import tests.part5b_absorption as checks
from tests.proving import assert_fails


def test_relative_carrier_threshold_is_named():
    source = textwrap.dedent(inspect.getsource(S.absorption_fraction))
    old = "carriers = cos[:, :, p] >= cos_threshold"
    assert old in source
    namespace = dict(vars(S))
    new = "carriers = cos[:, :, p] >= cos_threshold * cos[:, :, p].amax(-1, keepdim=True)"
    exec(source.replace(old, new), namespace)
    failure = assert_fails(
        checks.test_absorption_fraction, namespace["absorption_fraction"], "carriers_relative_threshold"
    )
    assert "TIMES the parent's best cosine" in failure.hint
