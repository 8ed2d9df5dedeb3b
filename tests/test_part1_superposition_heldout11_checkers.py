"""Proofs for part 1 after the fresh25 and fresh30 measurements: an anticorrelated pair's activity rate capped at a
constant, (2p).clamp(max=0.5), named as a rate that follows the right law up to a value and is flat after it; the
importance multiplying the output inside the loss's difference; signed values named by their observed range and
exponential values by their law (the shared value-law reading); a pair count read from the config; a pair's values
normalised."""

from __future__ import annotations

import einops
import torch

import tests.part1_superposition as p1
from solutions.part1_superposition import CorrelatedToyModel, ToyModel
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


def test_importance_on_one_side_of_the_difference():
    def calculate_loss(self, out, batch):
        return ((batch - self.importance * out) ** 2).mean((0, 2)).sum()

    variant = type("Variant", (ToyModel,), {"calculate_loss": calculate_loss})
    failure = assert_fails(p1.test_calculate_loss, variant, "importance_on_output")
    assert "target - importance · out" in failure.hint


def _batch(values_of):
    def generate_batch(self, n):
        shape = (n, self.cfg.n_inst, self.cfg.n_features)
        present = torch.rand(shape, device=self.W.device) < self.feature_probability
        return torch.where(present, values_of(shape, self.W.device), 0.0)

    return type("Variant", (ToyModel,), {"generate_batch": generate_batch})


def test_signed_values_named_by_their_range():
    failure = assert_fails(p1.test_generate_batch, _batch(lambda s, d: torch.rand(s, device=d) - 0.5), "values_signed")
    assert "U[-0.5, 0.5] (rand - 0.5)" in failure.hint
    failure = assert_fails(
        p1.test_generate_batch, _batch(lambda s, d: 2 * torch.rand(s, device=d) - 1), "values_signed"
    )
    assert "U[-1, 1] (2 * rand - 1)" in failure.hint
    # Another signed range: described as observed, no formula asserted.
    failure = assert_fails(p1.test_generate_batch, _batch(lambda s, d: torch.rand(s, device=d) - 0.3), "values_signed")
    assert "signed, from -0.3 to 0.7" in failure.hint and "U[-" not in failure.hint


def test_exponential_values_named_for_every_generator():
    expo = lambda s, d: torch.empty(s, device=d).exponential_()
    failure = assert_fails(p1.test_generate_batch, _batch(expo), "values_exponential")
    assert "Exp(1)" in failure.hint
    variant = _uncorrelated(lambda p, shape: torch.empty(shape, device=p.device).exponential_(2.0))
    failure = assert_fails(p1.test_generate_uncorrelated_features, variant, "values_exponential")
    assert "mean 0.5" in failure.hint


def _pairs(method, body):
    return type("Variant", (CorrelatedToyModel,), {method: body})


def test_pair_count_from_the_config_named():
    def correlated(self, n, p):
        k, m = p.shape[0], self.cfg.n_correlated_pairs
        present = (torch.rand(n, k, m, device=p.device) < p[:, :m]).repeat_interleave(2, -1)
        return torch.where(present, torch.rand(n, k, 2 * m, device=p.device), 0.0)

    def anticorrelated(self, n, p):
        k, m = p.shape[0], self.cfg.n_anticorrelated_pairs
        active = torch.rand(n, k, m, device=p.device) < 2 * p[:, :m]
        first = torch.rand(n, k, m, device=p.device) < 0.5
        present = torch.stack([active & first, active & ~first], -1).flatten(-2)
        return torch.where(present, torch.rand(n, k, 2 * m, device=p.device), 0.0)

    for method, body, field in (
        ("generate_correlated_features", correlated, "n_correlated_pairs"),
        ("generate_anticorrelated_features", anticorrelated, "n_anticorrelated_pairs"),
    ):
        failure = assert_fails(getattr(p1, f"test_{method}"), _pairs(method, body), "block_shape")
        assert f"0 is cfg.{field}" in failure.hint and "p.shape[1]" in failure.hint


def test_pair_values_normalised_named():
    def correlated(self, n, p):
        k, m = p.shape
        present = (torch.rand(n, k, m, device=p.device) < p).repeat_interleave(2, -1)
        v = torch.rand(n, k, m, 2, device=p.device)
        return torch.where(present, (v / v.sum(-1, keepdim=True)).flatten(-2), 0.0)

    failure = assert_fails(
        p1.test_generate_correlated_features,
        _pairs("generate_correlated_features", correlated),
        "values_dependent",
    )
    assert "sum to 1" in failure.hint and "independently from U[0, 1]" in failure.hint
