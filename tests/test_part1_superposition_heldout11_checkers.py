"""Proof for part 1 after the fresh25 measurement: an anticorrelated pair's activity rate capped at a constant,
(2p).clamp(max=0.5), named as a rate that follows the right law up to a value and is flat after it."""

from __future__ import annotations

import einops
import torch

import tests.part1_superposition as p1
from solutions.part1_superposition import CorrelatedToyModel
from tests.proving import assert_fails


def test_anticorrelated_rate_capped():
    def generate_anticorrelated_features(self, batch_size, p):
        n_inst, n_pairs = p.shape
        active = torch.rand(batch_size, n_inst, n_pairs, device=p.device) < (2 * p).clamp(max=0.5)
        first = torch.rand(batch_size, n_inst, n_pairs, device=p.device) < 0.5
        present = einops.rearrange(torch.stack([active & first, active & ~first], -1), "b i p t -> b i (p t)")
        return torch.where(present, torch.rand(batch_size, n_inst, 2 * n_pairs, device=p.device), 0.0)

    variant = type(
        "Variant", (CorrelatedToyModel,), {"generate_anticorrelated_features": generate_anticorrelated_features}
    )
    failure = assert_fails(p1.test_generate_anticorrelated_features, variant, "rate_capped")
    assert "capped at a constant" in failure.hint


def _uncorrelated(values_of):
    def generate_uncorrelated_features(self, n, p):
        shape = (n, *p.shape)
        present = torch.rand(shape, device=p.device) < p
        return torch.where(present, values_of(p, shape), 0.0)

    return type("Variant", (CorrelatedToyModel,), {"generate_uncorrelated_features": generate_uncorrelated_features})


def test_present_value_equal_to_p_is_named():
    variant = _uncorrelated(lambda p, shape: p.expand(shape))
    failure = assert_fails(p1.test_generate_uncorrelated_features, variant, "values_equal_p")
    assert "probability p" in failure.hint and "U[0, 1]" in failure.hint


def test_values_without_batch_axis_still_named():
    variant = _uncorrelated(lambda p, shape: torch.rand(shape[1:], device=p.device).expand(shape))
    assert_fails(p1.test_generate_uncorrelated_features, variant, "values_shared_over_batch")
