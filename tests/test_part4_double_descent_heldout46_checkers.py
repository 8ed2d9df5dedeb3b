"""Proofs for section 4 (round AU): generate_dataset divided by x.norm(-1, keepdim=True) (the -1 read as the order p,
so one 0 'norm' of the whole tensor, floored by the clamp) is named as one common divisor at the clamp's floor, not
as a squared norm; warmup_cosine_lr as the warm-up ramp times the cosine with no branch is named; generate_batch
returning another buffer (next(self.buffers())) names that buffer; compute_dimensionality with F.normalize(eps=1e-3)
is named as a floor on the norm used to normalise (a second tiny vector tells it from a floor on the denominator);
a clamp applied to the entries instead of the norm is named; and the round's correct variants pass."""

from __future__ import annotations

import math

import einops
import torch
import torch.nn.functional as F

import tests.part4_double_descent as checks
from solutions.part4_double_descent import DoubleDescentModel
from tests.proving import assert_fails, assert_passes


def _variant(generate_batch):
    return type("Variant", (DoubleDescentModel,), {"generate_batch": generate_batch})


def test_norm_positional_p_is_a_common_divisor():
    def generate_dataset(n_examples, n_inst, n_features, feature_probability, device=None):
        shape = (n_examples, n_inst, n_features)
        present = torch.rand(shape, device=device) < feature_probability
        x = torch.where(present, torch.rand(shape, device=device), 0.0)
        return x / x.norm(-1, keepdim=True).clamp_min(1e-12)

    failure = assert_fails(checks.test_generate_dataset, generate_dataset, "common_divisor")
    assert "reads -1 as the order p" in str(failure)


def test_warmup_times_cosine():
    def warmup_cosine_lr(step, steps, warmup_steps):
        warm = min(1.0, step / warmup_steps) if warmup_steps > 0 else 1.0
        return warm * 0.5 * (1 + math.cos(math.pi * step / steps))

    assert_fails(checks.test_warmup_cosine_lr, warmup_cosine_lr, "warmup_times_cosine")


def test_warmup_times_shifted_cosine():
    def warmup_cosine_lr(step, steps, warmup_steps):
        warm = min(1.0, step / warmup_steps) if warmup_steps > 0 else 1.0
        return warm * 0.5 * (1 + math.cos(math.pi * (step - warmup_steps) / (steps - warmup_steps)))

    assert_fails(checks.test_warmup_cosine_lr, warmup_cosine_lr, "warmup_times_cosine")


def test_first_buffer_is_named():
    def generate_batch(self, batch_size=None):
        return next(self.buffers())

    failure = assert_fails(checks.test_generate_batch, _variant(generate_batch), "other_tensor")
    assert "self.feature_probability" in str(failure)


def test_importance_buffer_is_named():
    def generate_batch(self, batch_size=None):
        return self.importance

    failure = assert_fails(checks.test_generate_batch, _variant(generate_batch), "other_tensor")
    assert "self.importance" in str(failure)


def test_normalize_eps_is_a_norm_floor():
    def compute_dimensionality(v):
        n2 = (v**2).sum(-1)
        u = F.normalize(v, dim=-1, eps=1e-3)
        den = einops.einsum(u, v, "inst i d, inst j d -> inst i j").pow(2).sum(-1)
        return n2 / den.clamp_min(1e-30)

    failure = assert_fails(checks.test_compute_dimensionality, compute_dimensionality, "norm_floor")
    assert "e = ‖v‖·√D = 0.001" in str(failure)


def test_denominator_floor_still_read_as_such():
    def compute_dimensionality(v):
        u = v / v.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return (v**2).sum(-1) / (u @ v.mT).pow(2).sum(-1).clamp_min(1e-6)

    failure = assert_fails(checks.test_compute_dimensionality, compute_dimensionality, "small_vector")
    assert "denominator has a floor f" in str(failure)


def test_clamp_on_entries_is_named():
    def compute_dimensionality(v):
        n2 = (v**2).sum(-1)
        u = v / v.clamp_min(1e-12).norm(dim=-1, keepdim=True)
        den = einops.einsum(u, v, "inst i d, inst j d -> inst i j").pow(2).sum(-1)
        return n2 / den.clamp_min(1e-30)

    assert_fails(checks.test_compute_dimensionality, compute_dimensionality, "clamped_entries")


def test_relu_everywhere_is_named():
    def compute_dimensionality(v):
        v = v.relu()
        n2 = (v**2).sum(-1)
        u = v / v.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        den = einops.einsum(u, v, "inst i d, inst j d -> inst i j").pow(2).sum(-1)
        return n2 / den.clamp_min(1e-30)

    assert_fails(checks.test_compute_dimensionality, compute_dimensionality, "clamped_entries")


def test_bernoulli_full_passes():
    def generate_dataset(n_examples, n_inst, n_features, feature_probability, device=None):
        shape = (n_examples, n_inst, n_features)
        present = torch.bernoulli(torch.full(shape, float(feature_probability), device=device)).bool()
        return F.normalize(present * torch.rand(shape, device=device), dim=-1)

    assert_passes(checks.test_generate_dataset, generate_dataset)


def test_conditional_expression_passes():
    def warmup_cosine_lr(step, steps, warmup_steps):
        if step < warmup_steps:
            return step / warmup_steps
        return (1 + math.cos(math.pi * (step - warmup_steps) / (steps - warmup_steps))) / 2

    assert_passes(checks.test_warmup_cosine_lr, warmup_cosine_lr)


def test_state_dict_passes():
    def generate_batch(self, batch_size=None):
        return self.state_dict()["train_data"]

    assert_passes(checks.test_generate_batch, _variant(generate_batch))


def test_gram_where_passes():
    def compute_dimensionality(v):
        G = v @ v.mT
        num = torch.diagonal(G, dim1=-2, dim2=-1) ** 2
        den = G.pow(2).sum(-1)
        return torch.where(den > 0, num / den, torch.zeros_like(num))

    assert_passes(checks.test_compute_dimensionality, compute_dimensionality)
