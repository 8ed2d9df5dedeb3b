"""Proofs for section 4 (round AV): generate_dataset drawing presence as 'one in int(1 / p)' is caught at p = 0.3
(its rate is 1 / 3 there) and named; warmup_cosine_lr with warmup_steps = max(warmup_steps, 1) is named as a zero
warm-up read as a one-step warm-up; a schedule cached by step alone is named from two settings called in both
orders; '//' in the cosine and a decay one step late are named; compute_dimensionality with a centred Gram
(torch.cov), a self term ‖v_i‖⁴ or a sum over j that drops the last chunk is named; and the correct variants pass."""

from __future__ import annotations

import math

import einops
import torch

import tests.part4_double_descent as checks
from tests.proving import assert_fails, assert_passes


def test_randint_one_in_k_rate():
    def generate_dataset(n_examples, n_inst, n_features, feature_probability, device=None):
        shape = (n_examples, n_inst, n_features)
        present = torch.randint(0, int(1 / feature_probability), shape, device=device) == 0
        x = torch.where(present, torch.rand(shape, device=device), 0.0)
        return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)

    failure = assert_fails(checks.test_generate_dataset, generate_dataset, "rate_one_in_k")
    assert "int(1 / p)" in str(failure)


def test_guard_reassigned_is_a_one_step_warmup():
    def warmup_cosine_lr(step, steps, warmup_steps):
        warmup_steps = max(warmup_steps, 1)
        if step < warmup_steps:
            return step / warmup_steps
        progress = (step - warmup_steps) / (steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * progress))

    failure = assert_fails(checks.test_warmup_cosine_lr, warmup_cosine_lr, "zero_warmup_one_step")
    assert "max(warmup_steps, 1)" in str(failure)


def test_cache_by_step():
    cache = {}

    def warmup_cosine_lr(step, steps, warmup_steps):
        if step not in cache:
            if step < warmup_steps:
                cache[step] = step / warmup_steps
            else:
                cache[step] = 0.5 * (1 + math.cos(math.pi * (step - warmup_steps) / (steps - warmup_steps)))
        return cache[step]

    assert_fails(checks.test_warmup_cosine_lr, warmup_cosine_lr, "cached_by_step")
    # a second run, with the cache already filled, says the same
    assert_fails(checks.test_warmup_cosine_lr, warmup_cosine_lr, "cached_by_step")


def test_correct_bernoulli_inplace():
    def generate_dataset(n_examples, n_inst, n_features, feature_probability, device=None):
        shape = (n_examples, n_inst, n_features)
        mask = torch.empty(shape, device=device).bernoulli_(feature_probability)
        x = mask * torch.rand(shape, device=device)
        n = x.pow(2).sum(-1, keepdim=True).sqrt()
        return torch.where(n > 0, x / torch.where(n > 0, n, torch.ones_like(n)), x)

    assert_passes(checks.test_generate_dataset, generate_dataset)


def test_correct_sin_complement():
    def warmup_cosine_lr(step, steps, warmup_steps):
        if step < warmup_steps:
            return step / warmup_steps
        return 0.5 * (1 - math.cos(math.pi * (steps - step) / (steps - warmup_steps)))

    assert_passes(checks.test_warmup_cosine_lr, warmup_cosine_lr)


def test_floor_division_in_the_cosine():
    def warmup_cosine_lr(step, steps, warmup_steps):
        if step < warmup_steps:
            return step / warmup_steps
        return 0.5 * (1 + math.cos(math.pi * (step - warmup_steps) // (steps - warmup_steps)))

    failure = assert_fails(checks.test_warmup_cosine_lr, warmup_cosine_lr, "cosine_floor_division")
    assert "//" in str(failure)


def test_peak_special_case_delays_the_decay():
    def warmup_cosine_lr(step, steps, warmup_steps):
        if step < warmup_steps:
            return step / warmup_steps
        if step == warmup_steps:
            return 1.0
        progress = (step - warmup_steps - 1) / (steps - warmup_steps - 1)
        return 0.5 * (1 + math.cos(math.pi * progress))

    failure = assert_fails(checks.test_warmup_cosine_lr, warmup_cosine_lr, "decay_one_step_late")
    assert "one step late" in str(failure)


def test_centred_gram():
    def compute_dimensionality(v):
        n = v.shape[1]
        G = torch.stack([torch.cov(vk.T, correction=0) * n for vk in v])
        norm_sq = v.pow(2).sum(-1)
        unit = v / norm_sq.sqrt().clamp_min(1e-12)[..., None]
        den = einops.einsum(unit, G, unit, "inst i d, inst d e, inst i e -> inst i")
        return torch.where(norm_sq > 0, norm_sq / den.clamp_min(1e-30), torch.zeros_like(norm_sq))

    failure = assert_fails(checks.test_compute_dimensionality, compute_dimensionality, "centred_gram")
    assert "torch.cov" in str(failure)


def test_self_term_unnormalised():
    def compute_dimensionality(v):
        norm_sq = v.pow(2).sum(-1)
        unit = v / norm_sq.sqrt().clamp_min(1e-12)[..., None]
        ov = einops.einsum(unit, v, "inst i d, inst j d -> inst i j").pow(2)
        off = ov.sum(-1) - torch.diagonal(ov, dim1=-2, dim2=-1)
        den = off + norm_sq**2
        return torch.where(norm_sq > 0, norm_sq / den.clamp_min(1e-30), torch.zeros_like(norm_sq))

    failure = assert_fails(checks.test_compute_dimensionality, compute_dimensionality, "self_term_power")
    assert "‖v_i‖⁴" in str(failure)


def test_chunk_tail_dropped():
    def compute_dimensionality(v, chunk=4):
        norm_sq = v.pow(2).sum(-1)
        unit = v / norm_sq.sqrt().clamp_min(1e-12)[..., None]
        den = torch.zeros_like(norm_sq)
        n = v.shape[1]
        for s in range(0, n - chunk + 1, chunk):
            den = den + einops.einsum(unit, v[:, s : s + chunk], "inst i d, inst j d -> inst i j").pow(2).sum(-1)
        return norm_sq / den.clamp_min(1e-30)

    failure = assert_fails(checks.test_compute_dimensionality, compute_dimensionality, "sum_over_j_cut")
    assert "first 4 of the 7" in str(failure)


def test_correct_offdiag_plus_norm():
    def compute_dimensionality(v):
        norm_sq = v.pow(2).sum(-1)
        unit = v / norm_sq.sqrt().clamp_min(1e-12)[..., None]
        ov = (unit @ v.mT).pow(2)
        eye = torch.eye(v.shape[1], dtype=torch.bool, device=v.device)
        den = ov.masked_fill(eye, 0).sum(-1) + norm_sq
        return norm_sq / torch.where(den > 0, den, torch.ones_like(den))

    assert_passes(checks.test_compute_dimensionality, compute_dimensionality)
