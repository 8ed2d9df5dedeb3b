"""Proofs for parts 1 and 2's diagnoses of the fresh9 held-out mistakes: a module or a squeezed tensor returned by
the forward pass, examples normalised per instance, values drawn once and reused, a presence rate taken from the
instance's largest p, float masks holding -1, anticorrelated pairs stacked on the instance axis, the importance
summed or averaged out of the loss's mean, values scaled by the importance (part 2's are in its heldout2 file)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

import tests.part1_superposition as checks
from tests.proving import assert_fails, assert_passes
from tests.test_part1_superposition_heldout_checkers import _down_up, corr_variant, variant


def forward_squeezed(self, x):
    return F.relu(_down_up(x, self.W) + self.b_final).squeeze()


def forward_relu_module(self, x):
    return nn.ReLU(_down_up(x, self.W) + self.b_final)


def test_forward_output_kind():
    assert_fails(checks.test_forward, variant(forward=forward_squeezed), "squeezed")
    assert_fails(checks.test_forward, variant(forward=forward_relu_module), "module_returned")


def _shape(self, n):
    return (n, self.cfg.n_inst, self.cfg.n_features)


def gb_normalised(self, n):
    s = _shape(self, n)
    x = torch.where(torch.rand(s) < self.feature_probability, torch.rand(s), 0.0)
    return x / x.sum(-1, keepdim=True).clamp_min(1e-12)


def gb_values_cached(self, n):
    s = _shape(self, n)
    if getattr(self, "_values", None) is None or self._values.shape != s:
        self._values = torch.rand(s)
    return torch.where(torch.rand(s) < self.feature_probability, self._values, 0.0)


def gb_presence_cached(self, n):
    s = _shape(self, n)
    if getattr(self, "_present", None) is None or self._present.shape != s:
        self._present = torch.rand(s) < self.feature_probability
    return torch.where(self._present, torch.rand(s), 0.0)


def gb_times_importance(self, n):
    s = _shape(self, n)
    return torch.where(torch.rand(s) < self.feature_probability, torch.rand(s) * self.importance, 0.0)


def test_generate_batch_draws():
    assert_fails(checks.test_generate_batch, variant(generate_batch=gb_normalised), "normalised_examples")
    assert_fails(checks.test_generate_batch, variant(generate_batch=gb_values_cached), "values_reused")
    assert_fails(checks.test_generate_batch, variant(generate_batch=gb_presence_cached), "presence_reused")
    assert_fails(checks.test_generate_batch, variant(generate_batch=gb_times_importance), "values_scaled_by_table")


def uncorrelated_max_p(self, n, p):
    s, q = (n, *p.shape), p.amax(-1, keepdim=True)
    return torch.where(torch.rand(s) < q, torch.rand(s), 0.0)


def uncorrelated_mean_p(self, n, p):
    s, q = (n, *p.shape), p.mean(-1, keepdim=True)
    return torch.where(torch.rand(s) < q, torch.rand(s), 0.0)


def test_uncorrelated_instance_p():
    for method, code in ((uncorrelated_max_p, "largest"), (uncorrelated_mean_p, "mean")):
        model = corr_variant(generate_uncorrelated_features=method)
        assert_fails(checks.test_generate_uncorrelated_features, model, f"presence_instance_{code}")


def anti_float_minus(self, n, p):
    k, m = p.shape
    a, f = (torch.rand(n, k, m) < 2 * p).float(), (torch.rand(n, k, m) < 0.5).float()
    return torch.stack([a * f, a - f], -1).flatten(-2) * torch.rand(n, k, 2 * m)


def anti_stack_instances(self, n, p):
    k, m = p.shape
    active, first = torch.rand(n, k, m) < 2 * p, torch.rand(n, k, m) < 0.5
    present = torch.stack([active & first, active & ~first], dim=1).reshape(n, k, 2 * m)
    return torch.where(present, torch.rand(n, k, 2 * m), 0.0)


def test_anticorrelated_layout_and_masks():
    check = checks.test_generate_anticorrelated_features
    assert_fails(check, corr_variant(generate_anticorrelated_features=anti_float_minus), "mask_negative")
    assert_fails(check, corr_variant(generate_anticorrelated_features=anti_stack_instances), "pair_layout")


def loss_importance_summed(self, out, batch):
    return ((batch - out) ** 2).mean((0, 2)).mul(self.importance.sum(-1)).sum()


def loss_importance_averaged(self, out, batch):
    return ((batch - out) ** 2).mean((0, 2)).mul(self.importance.mean(-1)).sum()


def test_loss_importance_reduced():
    assert_fails(checks.test_calculate_loss, variant(calculate_loss=loss_importance_summed), "importance_summed")
    assert_fails(checks.test_calculate_loss, variant(calculate_loss=loss_importance_averaged), "importance_averaged")


def gb_ok_bernoulli(self, n):
    s = _shape(self, n)
    return torch.bernoulli(self.feature_probability.expand(s)) * torch.empty(s).uniform_(0, 1)


def test_correct_variant_passes():
    assert_passes(checks.test_generate_batch, variant(generate_batch=gb_ok_bernoulli))
