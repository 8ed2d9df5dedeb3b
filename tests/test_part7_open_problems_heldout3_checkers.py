"""Proofs for part 7's probe added after the fresh9 held-out measurement: compute_target right on [batch inst
feats] input but counting axes from the front (dim=2, [:, :, 0::2]), so that two leading axes break it."""

from __future__ import annotations

import solutions.part7_open_problems as ref
import tests.part7_open_problems as checks
from tests.proving import assert_fails


def test_compute_target_pairs_sliced_from_the_front():
    def compute_target(features, target):
        if target.endswith("_pairs"):
            first, second = features[:, :, 0::2], features[:, :, 1::2]  # 3 axes assumed
            if target == "max_pairs":
                return first.maximum(second)
        return ref.compute_target(features, target)

    err = assert_fails(checks.test_compute_target, compute_target, "fixed_axis")
    assert "[..., 0::2]" in err.hint


def test_compute_target_argmax_dim_2():
    def compute_target(features, target):
        if target == "argmax":
            return (
                ref.compute_target(features.movedim(2, -1), target)
                if features.ndim == 4
                else (ref.compute_target(features, target))
            )
        return ref.compute_target(features, target)

    assert_fails(checks.test_compute_target, compute_target, "fixed_axis")
