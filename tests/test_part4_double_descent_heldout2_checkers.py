"""Proofs for the fresh10 held-out fixes in part 4: a float-equivalent training set accepted (F.normalize of unit
rows), a list returned by generate_batch, renorm and other-axis norms in generate_dataset, norms below one
described, a sine schedule, L1-normalised dimensionality and the self-term counted twice; fresh13: recursion, a norm
capped at 1, a constant cosine part read as a constant progress, a power of the norm off by one."""

from __future__ import annotations

import math

import einops
import torch
import torch.nn.functional as F

import tests.part4_double_descent as p4
from solutions.part4_double_descent import DoubleDescentModel
from tests.proving import assert_fails, assert_passes


def _sub(base, **methods) -> type:
    return type("Variant", (base,), methods)


# ---------------- part 4: generate_batch
def gb_normalised(self, batch_size=None):
    return F.normalize(self.train_data, dim=-1)  # a no-op up to float rounding (≤ 1.2e-7)


def gb_list(self, batch_size=None):
    return list(self.train_data)


def test_generate_batch_float_tolerance_and_list():
    assert_passes(p4.test_generate_batch, _sub(DoubleDescentModel, generate_batch=gb_normalised))
    err = assert_fails(p4.test_generate_batch, _sub(DoubleDescentModel, generate_batch=gb_list), "not_tensor")
    assert "not a list" in err.hint


# ---------------- part 4: generate_dataset, warmup_cosine_lr, compute_dimensionality
def _draw(n, k, f, p, device):
    s = (n, k, f)
    return torch.where(torch.rand(s, device=device) < p, torch.rand(s, device=device), 0.0)


def gen_renorm(n_examples, n_inst, n_features, feature_probability, device=None):
    return _draw(n_examples, n_inst, n_features, feature_probability, device).renorm(2, -1, 1.0)


def gen_norm_0_2(n_examples, n_inst, n_features, feature_probability, device=None):
    x = _draw(n_examples, n_inst, n_features, feature_probability, device)
    return x / x.norm(dim=(0, 2), keepdim=True).clamp_min(1e-12)


def test_generate_dataset_other_axes_not_called_before_mask():
    for impl in (gen_renorm, gen_norm_0_2):
        assert_fails(p4.test_generate_dataset, impl, "norm_axis_other")


def lr_sin(step, steps, warmup_steps):
    if step < warmup_steps:
        return step / warmup_steps
    return 0.5 * (1 + math.sin(math.pi * (step - warmup_steps) / (steps - warmup_steps)))


def test_warmup_cosine_sine():
    assert_fails(p4.test_warmup_cosine_lr, lr_sin, "sine_not_cosine")


def cd4_l1(vectors):
    norm_sq = (vectors**2).sum(-1)
    unit = vectors / vectors.abs().sum(-1, keepdim=True).clamp_min(1e-12)
    ov = einops.einsum(unit, vectors, "k i d, k j d -> k i j") ** 2
    return norm_sq / ov.sum(-1).clamp_min(1e-30)


def cd4_self_twice(vectors):
    norm_sq = (vectors**2).sum(-1)
    unit = vectors / norm_sq.sqrt().clamp_min(1e-12)[..., None]
    den = einops.einsum(unit, vectors, "k i d, k j d -> k i j").pow(2).sum(-1) + norm_sq
    return torch.where(den > 0, norm_sq / den.clamp_min(1e-30), torch.zeros_like(norm_sq))


def test_part4_dimensionality():
    err = assert_fails(p4.test_compute_dimensionality, cd4_l1, "not_rotation_invariant")
    assert "L1" in err.hint
    assert_fails(p4.test_compute_dimensionality, cd4_self_twice, "self_term_twice")


def gen_shrunk(n_examples, n_inst, n_features, feature_probability, device=None):
    x = _draw(n_examples, n_inst, n_features, feature_probability, device)
    return x / (x.norm(dim=-1, keepdim=True) + 1.0)  # a norm below one that no listed cause explains


def test_generate_dataset_norms_below_one_are_described():
    err = assert_fails(p4.test_generate_dataset, gen_shrunk, "norm_below_one")
    assert "median" in err.message or "median" in (err.hint or "")


def gen_sqrt_count(n_examples, n_inst, n_features, feature_probability, device=None):
    x = _draw(n_examples, n_inst, n_features, feature_probability, device)
    return x / (x > 0).sum(-1, keepdim=True).clamp_min(1).sqrt()


def test_generate_dataset_count_divisor_is_listed():
    err = assert_fails(p4.test_generate_dataset, gen_sqrt_count, "norm_below_one")
    assert "count of present features" in err.hint and "mean norm by number of present features" in err.hint


# fresh12: a parenthesis misplaced in the cosine part of the schedule.
def _lr_with(cosine):
    def warmup_cosine_lr(step, steps, warmup_steps):
        if step < warmup_steps:
            return step / warmup_steps
        return cosine((step - warmup_steps) / (steps - warmup_steps))

    return warmup_cosine_lr


def test_part4_heldout12_cosine_parentheses():
    for cosine in (
        lambda q: 0.5 * math.cos(math.pi * q + 1),
        lambda q: 0.5 * 1 + math.cos(math.pi * q),
        lambda q: 0.5 * (1 + math.cos(math.pi) * q),
        lambda q: 0.5 * (1 + math.cos(math.pi * q + 1)),
    ):
        err = assert_fails(p4.test_warmup_cosine_lr, _lr_with(cosine), "cosine_parentheses")
        assert "misplaced" in err.hint


# fresh13: generate_batch calling itself, a clamp of the norm with an upper bound, progress always 1 (or 0), the
# overlaps divided by the norm instead of its square
def gb_recursion(self, batch_size=None):
    return self.generate_batch(batch_size)


def gen_clamp_both(n_examples, n_inst, n_features, feature_probability, device=None):
    x = _draw(n_examples, n_inst, n_features, feature_probability, device)
    return x / x.norm(dim=-1, keepdim=True).clamp(1e-12, 1)


def lr_steps_typo(step, steps, warmup_steps):
    if step < warmup_steps:
        return step / warmup_steps
    return 0.5 * (1 + math.cos(math.pi * (steps - warmup_steps) / (steps - warmup_steps)))


def lr_floor_division(step, steps, warmup_steps):
    if step < warmup_steps:
        return step / warmup_steps
    return 0.5 * (1 + math.cos(math.pi * ((step - warmup_steps) // (steps - warmup_steps))))


def cd_div_norm(vectors):
    n2 = (vectors**2).sum(-1)
    overlaps = (vectors @ vectors.mT) ** 2 / n2.sqrt().clamp_min(1e-12)[..., None]
    return n2 / overlaps.sum(-1).clamp_min(1e-30)


def test_part4_heldout13():
    err = assert_fails(p4.test_generate_batch, _sub(DoubleDescentModel, generate_batch=gb_recursion), "recursion")
    assert "calls itself" in err.hint and "return self.generate_batch(batch_size)" in err.message
    err = assert_fails(p4.test_generate_dataset, gen_clamp_both, "norm_capped_at_one")
    assert "norms above 1" in err.hint
    err = assert_fails(p4.test_warmup_cosine_lr, lr_steps_typo, "cosine_constant")
    assert "progress is always 1" in err.message and "possible causes" in err.hint
    err = assert_fails(p4.test_warmup_cosine_lr, lr_floor_division, "cosine_constant")
    assert "progress is always 0" in err.message and "`//`" in err.hint
    err = assert_fails(p4.test_compute_dimensionality, cd_div_norm, "numerator")
    assert "off by one" in err.hint and "divided by ‖vᵢ‖" in err.hint
