"""Proofs for section 4 (round AT): generate_dataset drawn and normalised in float16 (or bfloat16) and cast at the end
is named as low precision, not as a missing normalisation; a fixed number of present features per example is named as
such; compute_dimensionality with the overlaps clamped at 0 (or only their negative part kept) before squaring is
named by the sign; and the round's correct variants pass."""

from __future__ import annotations

import math

import einops
import torch

import tests.part4_double_descent as checks
from solutions.part4_double_descent import DoubleDescentModel
from tests.proving import assert_fails, assert_passes


def _low_precision(dtype):
    def generate_dataset(n_examples, n_inst, n_features, feature_probability, device=None):
        shape = (n_examples, n_inst, n_features)
        u = torch.rand(shape, device=device, dtype=dtype)
        present = u < feature_probability
        x = torch.where(present, torch.rand(shape, device=device, dtype=dtype), 0.0)
        x = x / x.norm(dim=-1, keepdim=True).clamp_min(1e-4)
        return x.float()

    return generate_dataset


def test_float16_draws_are_named():
    failure = assert_fails(checks.test_generate_dataset, _low_precision(torch.float16), code="low_precision")
    assert "float16" in str(failure)


def test_bfloat16_draws_are_named():
    failure = assert_fails(checks.test_generate_dataset, _low_precision(torch.bfloat16), code="low_precision")
    assert "bfloat16" in str(failure)


def test_exact_count_is_named():
    def generate_dataset(n_examples, n_inst, n_features, feature_probability, device=None):
        # exactly round(p * n) features present in every example (random subset via argsort ranks)
        shape = (n_examples, n_inst, n_features)
        k = round(feature_probability * n_features)
        present = torch.rand(shape, device=device).argsort(-1).argsort(-1) < k
        x = torch.where(present, torch.rand(shape, device=device), 0.0)
        return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)

    failure = assert_fails(checks.test_generate_dataset, generate_dataset, code="fixed_count")
    assert "exactly 2 features" in str(failure)


def _unit(v):
    n2 = (v**2).sum(-1)
    return n2, v / n2.sqrt().clamp_min(1e-12)[..., None]


def test_positive_overlaps_are_named():
    def compute_dimensionality(v):
        n2, u = _unit(v)
        ov = einops.einsum(u, v, "inst i d, inst j d -> inst i j").clamp_min(0) ** 2
        return n2 / ov.sum(-1).clamp_min(1e-30)

    failure = assert_fails(checks.test_compute_dimensionality, compute_dimensionality, code="overlap_sign")
    assert "positive" in str(failure)


def test_negative_overlaps_are_named():
    def compute_dimensionality(v):
        n2, u = _unit(v)
        ov = einops.einsum(u, v, "inst i d, inst j d -> inst i j").clamp_max(0) ** 2
        return torch.where(ov.sum(-1) > 0, n2 / ov.sum(-1).clamp_min(1e-30), 0.0)

    assert_fails(checks.test_compute_dimensionality, compute_dimensionality, code="overlap_sign")


def test_one_uniform_per_entry_passes():
    def generate_dataset(n_examples, n_inst, n_features, feature_probability, device=None):
        # present when u < p, value u / p is uniform on [0, 1)
        u = torch.rand(n_examples, n_inst, n_features, device=device)
        x = torch.where(u < feature_probability, u / feature_probability, 0.0)
        return torch.nn.functional.normalize(x, dim=-1)

    assert_passes(checks.test_generate_dataset, generate_dataset)


def test_cos_squared_passes():
    def warmup_cosine_lr(step, steps, warmup_steps):
        if warmup_steps > 0 and step < warmup_steps:
            return step / warmup_steps
        return math.cos(math.pi / 2 * (step - warmup_steps) / (steps - warmup_steps)) ** 2

    assert_passes(checks.test_warmup_cosine_lr, warmup_cosine_lr)


def test_buffers_lookup_passes():
    def generate_batch(self, batch_size=None):
        return self._buffers["train_data"]

    variant = type("Variant", (DoubleDescentModel,), {"generate_batch": generate_batch})
    assert_passes(checks.test_generate_batch, variant)


def test_gram_with_where_passes():
    def compute_dimensionality(v):
        n2 = v.pow(2).sum(-1)
        G = torch.einsum("knd,kne->kde", v, v)
        quad = torch.einsum("knd,kde,kne->kn", v, G, v)  # = n2 * sum_j (v_hat_i . v_j)^2
        safe = torch.where(n2 > 0, quad, torch.ones_like(quad))
        return torch.where(n2 > 0, n2 * n2 / safe, torch.zeros_like(n2))

    assert_passes(checks.test_compute_dimensionality, compute_dimensionality)
