"""Proofs for section 4 (held-out round AW): a presence mask drawn from a generator re-seeded inside the function is
caught (two calls give the same mask); a zero vector's NaN dimensionality is described where it is and names both
guards that let 0 / 0 through (an unprotected v / ‖v‖, or a `den >= 0` test); "normalised before the mask" is named
only when the read-back E[‖x‖² | k present] = k / F holds, so another shrinking divisor is not given that cause."""

from __future__ import annotations

import math

import einops
import torch
import torch.nn.functional as F

import tests.part4_double_descent as checks
from tests.proving import assert_fails, assert_passes


def gen_seeded_presence(n_examples, n_inst, n_features, feature_probability, device=None):
    shape = (n_examples, n_inst, n_features)
    g = torch.Generator().manual_seed(1234)
    present = (torch.rand(shape, generator=g) < feature_probability).to(device)
    x = present * torch.rand(shape, device=device)
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def gen_cube_root_count(n_examples, n_inst, n_features, feature_probability, device=None):
    shape = (n_examples, n_inst, n_features)
    x = (torch.rand(shape, device=device) < feature_probability) * torch.rand(shape, device=device)
    count = (x > 0).sum(-1, keepdim=True).clamp_min(1)
    return x / (2 * count ** (1 / 3))


def gen_normalise_then_mask(n_examples, n_inst, n_features, feature_probability, device=None):
    shape = (n_examples, n_inst, n_features)
    values = torch.rand(shape, device=device)
    values = values / values.norm(dim=-1, keepdim=True)
    return torch.where(torch.rand(shape, device=device) < feature_probability, values, 0.0)


def cd_nan_guard_ne(vectors):
    norm = vectors.norm(dim=-1, keepdim=True)
    unit = vectors / norm
    den = einops.einsum(unit, vectors, "inst i d, inst j d -> inst i j").pow(2).sum(-1)
    return torch.where(den != 0, norm.squeeze(-1) ** 2 / den, torch.zeros_like(den))


def cd_den_ge_zero(vectors):
    norm_sq = (vectors**2).sum(-1)
    unit = vectors / norm_sq.sqrt().clamp_min(1e-12)[..., None]
    den = einops.einsum(unit, vectors, "inst i d, inst j d -> inst i j").pow(2).sum(-1)
    return torch.where(den >= 0, norm_sq / den, torch.zeros_like(norm_sq))


# correct variants the round found
def gen_shared_uniform(n_examples, n_inst, n_features, feature_probability, device=None):
    u = torch.rand(n_examples, n_inst, n_features, device=device)
    x = u * (u < feature_probability)
    n = x.norm(dim=-1, keepdim=True)
    return torch.where(n > 0, x / n, x)


def gen_dropout(n_examples, n_inst, n_features, feature_probability, device=None):
    x = F.dropout(torch.rand(n_examples, n_inst, n_features, device=device), 1 - feature_probability)
    return F.normalize(x, dim=-1)


def cd_vector_norm(vectors):
    norm = vectors.norm(dim=-1, keepdim=True)
    unit = vectors / norm.clamp_min(1e-12)
    overlaps = torch.linalg.vector_norm(vectors @ unit.mT, dim=-2) ** 2
    return torch.where(overlaps > 0, norm.squeeze(-1) ** 2 / overlaps.clamp_min(1e-30), 0.0)


def test_seeded_presence_is_caught():
    failure = assert_fails(checks.test_generate_dataset, gen_seeded_presence, "same_mask_every_call")
    assert "same presence mask" in str(failure)


def test_zero_vector_nan_names_both_guards():
    for impl in (cd_nan_guard_ne, cd_den_ge_zero):
        failure = assert_fails(checks.test_compute_dimensionality, impl, "zero_vector")
        assert "only at the zero vector" in str(failure) and "den >= 0" in str(failure)
        assert "den != 0" in str(failure)


def test_normalised_before_mask_needs_read_back():
    failure = assert_fails(checks.test_generate_dataset, gen_normalise_then_mask, "normalised_before_mask")
    assert "k / 24" in str(failure)
    failure = assert_fails(checks.test_generate_dataset, gen_cube_root_count, "norm_below_one")
    assert "before applying the mask" not in str(failure)


def test_round_correct_variants_pass():
    assert_passes(checks.test_generate_dataset, gen_shared_uniform)
    assert_passes(checks.test_generate_dataset, gen_dropout)
    assert_passes(checks.test_compute_dimensionality, cd_vector_norm)


def lr_warmup_default_or(step, steps, warmup_steps):
    warmup_steps = warmup_steps or 10
    if step < warmup_steps:
        return step / warmup_steps
    progress = (step - warmup_steps) / (steps - warmup_steps)
    return 0.5 * (1 + math.cos(math.pi * progress))


def test_zero_warmup_replaced_by_a_default_is_named():
    failure = assert_fails(checks.test_warmup_cosine_lr, lr_warmup_default_or, "zero_warmup_replaced")
    assert "warmup_steps=10" in str(failure)
