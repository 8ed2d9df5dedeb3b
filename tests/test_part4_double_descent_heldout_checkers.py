"""Proofs for part 4's checkers, second file: mistakes from the held-out trial (and one correct variant)."""

from __future__ import annotations

import math

import einops
import pytest
import torch

import tests.part4_double_descent as checks
from solutions.part4_double_descent import DoubleDescentModel
from solutions.part4_double_descent import warmup_cosine_lr as ref_warmup_cosine_lr
from tests.proving import assert_fails, assert_passes


def _sparse(shape, p, device):
    return torch.where(torch.rand(shape, device=device) < p, torch.rand(shape, device=device), 0.0)


def gen_randint_mask(n_examples, n_inst, n_features, feature_probability, device=None):
    shape = (n_examples, n_inst, n_features)
    x = torch.randint(0, 2, shape, device=device) * torch.rand(shape, device=device)
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def gen_rate_per_instance(n_examples, n_inst, n_features, feature_probability, device=None):
    shape = (n_examples, n_inst, n_features)
    probs = 2 * feature_probability * torch.arange(1, n_inst + 1, device=device)[None, :, None] / n_inst
    x = torch.where(torch.rand(shape, device=device) < probs, torch.rand(shape, device=device), 0.0)
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def gen_clamp_at_one(n_examples, n_inst, n_features, feature_probability, device=None):
    x = _sparse((n_examples, n_inst, n_features), feature_probability, device)
    return x / x.norm(dim=-1, keepdim=True).clamp(min=1)


def gen_large_epsilon(n_examples, n_inst, n_features, feature_probability, device=None):
    x = _sparse((n_examples, n_inst, n_features), feature_probability, device)
    return x / (x.norm(dim=-1, keepdim=True) + 1e-2)


def lr_warmup_plus_one(step, steps, warmup_steps):
    if step < warmup_steps:
        return (step + 1) / (warmup_steps + 1)
    return ref_warmup_cosine_lr(step, steps, warmup_steps)


def lr_warmup_minus_one(step, steps, warmup_steps):
    if step < warmup_steps:
        return step / (warmup_steps - 1)
    return ref_warmup_cosine_lr(step, steps, warmup_steps)


def lr_quarter_cosine(step, steps, warmup_steps):
    if step < warmup_steps:
        return step / warmup_steps
    return math.cos(math.pi / 2 * (step - warmup_steps) / (steps - warmup_steps))


def lr_cosine_late(step, steps, warmup_steps):
    if step < warmup_steps:
        return step / warmup_steps
    return 0.5 * (1 + math.cos(math.pi * (step - warmup_steps + 1) / (steps - warmup_steps)))


def lr_min_floor(step, steps, warmup_steps):
    if step < warmup_steps:
        return step / warmup_steps
    return 0.1 + 0.9 * ref_warmup_cosine_lr(step, steps, warmup_steps)


def gb_sampled_rows(self, batch_size=None):
    n = self.train_data.shape[0]
    return self.train_data[torch.randperm(n)[: batch_size or n]]


def gb_last_rows(self, batch_size=None):
    return self.train_data[-(batch_size or 0) :]


def dim_cosines_only(vectors):
    unit = torch.nn.functional.normalize(vectors, dim=-1)
    den = (unit @ unit.transpose(1, 2)).pow(2).sum(-1)
    return torch.where(vectors.norm(dim=-1) > 0, 1 / den.clamp_min(1e-30), 0.0)


def dim_no_numerator(vectors):
    unit = torch.nn.functional.normalize(vectors, dim=-1)
    den = (unit @ vectors.transpose(1, 2)).pow(2).sum(-1)
    return torch.where(vectors.norm(dim=-1) > 0, 1 / den.clamp_min(1e-30), 0.0)


def dim_clamp_at_one(vectors):
    norm_sq = (vectors**2).sum(-1)
    unit = vectors / norm_sq.sqrt().clamp_min(1e-12)[..., None]
    return norm_sq / (unit @ vectors.transpose(1, 2)).pow(2).sum(-1).clamp_min(1)


def gen_eps_1e8(n_examples, n_inst, n_features, feature_probability, device=None):
    x = _sparse((n_examples, n_inst, n_features), feature_probability, device)
    return x / (x.norm(dim=-1, keepdim=True) + 1e-8)


def test_generate_dataset_accepts_an_epsilon_on_the_norm():
    assert_passes(checks.test_generate_dataset, gen_eps_1e8)


def lr_no_pi(step, steps, warmup_steps):
    if step < warmup_steps:
        return step / warmup_steps
    return 0.5 * (1 + math.cos((step - warmup_steps) / (steps - warmup_steps)))


def lr_tensor_cos(step, steps, warmup_steps):
    if step < warmup_steps:
        return torch.tensor(step / warmup_steps)
    return 0.5 * (1 + torch.cos(torch.tensor(math.pi * (step - warmup_steps) / (steps - warmup_steps))))


def gb_normalised_again(self, batch_size=None):
    return torch.nn.functional.normalize(self.train_data, dim=1)


def gb_one_instance(self, batch_size=None):
    return self.train_data[:, 0]


def gb_cached_own(self, batch_size=None):
    if not hasattr(self, "_own"):
        g = torch.Generator(device=self.train_data.device).manual_seed(0)
        shape = self.train_data.shape
        x = torch.rand(shape, generator=g, device=self.train_data.device)
        x = torch.where(x < 0.1, torch.rand(shape, generator=g, device=x.device), 0.0)
        self._own = x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return self._own


def dim_wrong_vector_normalised(vectors):
    norm_sq = (vectors**2).sum(-1)
    unit = vectors / norm_sq.sqrt().clamp_min(1e-12)[..., None]
    return norm_sq / (vectors @ unit.transpose(1, 2)).pow(2).sum(-1).clamp_min(1e-30)


def dim_d_by_d(vectors):
    norm_sq = (vectors**2).sum(-1)
    unit = vectors / norm_sq.sqrt().clamp_min(1e-12)[..., None]
    return norm_sq / (unit.transpose(1, 2) @ vectors).pow(2).sum((-1, -2))[..., None]


def dim_self_only(vectors):
    norm_sq = (vectors**2).sum(-1)
    unit = vectors / norm_sq.sqrt().clamp_min(1e-12)[..., None]
    return norm_sq / (unit * vectors).pow(2).sum(-1)


def dim_cubed_numerator(vectors):
    norm_sq = (vectors**2).sum(-1)
    unit = vectors / norm_sq.sqrt().clamp_min(1e-12)[..., None]
    return norm_sq**1.5 / (unit @ vectors.transpose(1, 2)).pow(2).sum(-1)


def model_variant(generate_batch) -> type:
    return type("Variant", (DoubleDescentModel,), {"generate_batch": generate_batch})


def dim_norms_along_i(v):  # Σ_j cos²(i, j) weighted by ‖v_i‖² (n2[..., None] instead of n2[..., None, :])
    n2 = (v**2).sum(-1)
    u = v / n2.sqrt().clamp_min(1e-12)[..., None]
    cos2 = torch.einsum("kid,kjd->kij", u, u) ** 2
    return n2 / (cos2 * n2[..., None]).sum(-1).clamp_min(1e-30)


MISTAKES = [
    ("G", gen_randint_mask, "presence_half_fixed"),
    ("G", gen_rate_per_instance, "presence_varies"),
    ("G", gen_clamp_at_one, "norm_clamped_at_one"),
    ("G", gen_large_epsilon, "norm_epsilon"),
    ("L", lr_warmup_plus_one, "warmup_off_by_one"),
    ("L", lr_warmup_minus_one, "warmup_off_by_one"),
    ("L", lr_quarter_cosine, "quarter_cosine"),
    ("L", lr_cosine_late, "cosine_start_off_by_one"),
    ("L", lr_min_floor, "cosine_floor"),
    ("B", gb_sampled_rows, "batch_size_rows"),
    ("B", gb_last_rows, "batch_size_rows"),
    ("C", dim_cosines_only, "sum_axis"),
    ("C", dim_no_numerator, "unnormalised"),
    ("C", dim_clamp_at_one, "clamp_too_large"),
    ("L", lr_no_pi, "cosine_period"),
    ("L", lr_tensor_cos, "returned_tensor"),
    ("B", gb_normalised_again, "transformed"),
    ("B", gb_one_instance, "one_instance"),
    ("B", gb_cached_own, "regenerated"),
    ("C", dim_wrong_vector_normalised, "sum_axis"),
    ("C", dim_d_by_d, "denominator_constant"),
    ("C", dim_self_only, "ignores_others"),
    ("C", dim_cubed_numerator, "norm_powers"),
    ("C", dim_norms_along_i, "sum_axis"),
]
CHECKS = {
    "G": checks.test_generate_dataset,
    "L": checks.test_warmup_cosine_lr,
    "B": lambda impl, device="cpu": checks.test_generate_batch(model_variant(impl), device=device),
    "C": checks.test_compute_dimensionality,
}


@pytest.mark.parametrize(("kind", "impl", "code"), MISTAKES, ids=[f.__name__ for _, f, _ in MISTAKES])
def test_heldout_mistakes_are_named(kind, impl, code):
    assert_fails(CHECKS[kind], impl, code)


# ---- fresh2 round
def gen_standardised(n_examples, n_inst, n_features, feature_probability, device=None):
    x = _sparse((n_examples, n_inst, n_features), feature_probability, device)
    return (x - x.mean(-1, keepdim=True)) / x.std(-1, keepdim=True).clamp_min(1e-12)


def gen_no_keepdim(n_examples, n_inst, n_features, feature_probability, device=None):
    x = _sparse((n_examples, n_inst, n_features), feature_probability, device)
    return x / x.norm(dim=-1).clamp_min(1e-12)


def lr_degrees(step, steps, warmup_steps):
    if step < warmup_steps:
        return step / warmup_steps
    return 0.5 * (1 + math.cos(180 * (step - warmup_steps) / (steps - warmup_steps)))


def lr_zero_warmup_constant(step, steps, warmup_steps):
    return 1.0 if warmup_steps == 0 else ref_warmup_cosine_lr(step, steps, warmup_steps)


def test_fresh2_dataset_and_schedule():
    err = assert_fails(checks.test_generate_dataset, gen_standardised, "standardised")
    assert "standard deviation 1" in err.hint
    err = assert_fails(checks.test_generate_dataset, gen_no_keepdim, "no_keepdim")
    assert "keepdim=True" in err.hint
    err = assert_fails(checks.test_warmup_cosine_lr, lr_degrees, "cosine_period")
    assert "degrees" in err.hint
    err = assert_fails(checks.test_warmup_cosine_lr, lr_zero_warmup_constant, "zero_warmup_case")
    assert "warmup_steps = 0" in err.hint


def test_fresh3_unit_vector_without_square_root():
    def unit_no_sqrt(v):
        n2 = v.pow(2).sum(-1)
        u = v / n2.clamp_min(1e-12)[..., None]
        return n2 / (torch.einsum("kid,kjd->kij", u, v) ** 2).sum(-1).clamp_min(1e-30)

    assert_fails(checks.test_compute_dimensionality, unit_no_sqrt, "numerator_power")


# fresh4: the cosine's progress not shifted, all-zero examples dropped, the data returned as a parameter
def lr_progress_not_shifted(step, steps, warmup):
    if step < warmup:
        return step / warmup
    return 0.5 * (1 + math.cos(math.pi * step / (steps - warmup)))


def gb_drop_empty(self, batch_size=None):
    return self.train_data[self.train_data.abs().sum((-1, -2)) > 0]


def gb_parameter(self, batch_size=None):
    return torch.nn.Parameter(self.train_data)


def test_fresh4_mistakes_are_named():
    assert_fails(checks.test_warmup_cosine_lr, lr_progress_not_shifted, "progress_not_shifted")
    dv = lambda f: type("DV", (DoubleDescentModel,), {"generate_batch": f})
    assert_fails(checks.test_generate_batch, dv(gb_drop_empty), "dropped_empty")
    assert_fails(checks.test_generate_batch, dv(gb_parameter), "requires_grad")


def lr_integer_progress(step, steps, warmup_steps):
    if step < warmup_steps:
        return step / warmup_steps
    return 0.5 * (1 + math.cos(math.pi * ((step - warmup_steps) // (steps - warmup_steps))))


def dim_max_over_j(vectors):
    unit = vectors / vectors.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    overlaps = einops.einsum(unit, vectors, "... i d, ... j d -> ... i j").pow(2)
    return vectors.pow(2).sum(-1) / overlaps.max(-1).values


def test_fresh5_constant_schedule_and_max_over_j():
    err = assert_fails(checks.test_warmup_cosine_lr, lr_integer_progress, "cosine_constant")
    assert "//" in err.hint and "minimum learning rate" not in err.hint
    err = assert_fails(checks.test_compute_dimensionality, dim_max_over_j, "ignores_others")
    assert "max" in err.hint


# fresh7: squares left out of the norm, a reseeded generator, parameters declared in another order, noise on the
# training set, a triangle of the overlap matrix
def gen_sqrt_of_sum(n_examples, n_inst, n_features, feature_probability, device=None):
    x = _sparse((n_examples, n_inst, n_features), feature_probability, device)
    return x / x.sum(-1, keepdim=True).sqrt().clamp_min(1e-12)


def gen_reseeded(n_examples, n_inst, n_features, feature_probability, device=None):
    g = torch.Generator().manual_seed(0)
    shape = (n_examples, n_inst, n_features)
    x = torch.where(torch.rand(shape, generator=g) < feature_probability, torch.rand(shape, generator=g), 0.0)
    return (x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)).to(device)


def lr_declared_warmup_first(step, warmup_steps, steps):
    return ref_warmup_cosine_lr(step, steps, warmup_steps)


def gb_noisy(self, batch_size=None):
    return self.train_data + 0.01 * torch.randn_like(self.train_data)


def dim_tril(vectors):
    n2 = vectors.pow(2).sum(-1)
    unit = vectors / n2.sqrt().clamp_min(1e-12)[..., None]
    return n2 / einops.einsum(unit, vectors, "k i d, k j d -> k i j").pow(2).tril().sum(-1).clamp_min(1e-30)


def test_fresh7_mistakes_are_named():
    err = assert_fails(checks.test_generate_dataset, gen_sqrt_of_sum, "norm_squares_missing")
    assert "squares" in err.hint
    err = assert_fails(checks.test_generate_dataset, gen_reseeded, "same_every_call")
    assert "seeded" in err.hint
    err = assert_fails(checks.test_warmup_cosine_lr, lr_declared_warmup_first, "arguments_swapped")
    assert "exchanged" in err.hint
    err = assert_fails(
        checks.test_generate_batch, type("DV", (DoubleDescentModel,), {"generate_batch": gb_noisy}), "not_fixed"
    )
    assert "noise" in err.hint and "new examples" not in err.hint
    err = assert_fails(checks.test_compute_dimensionality, dim_tril, "triangle_only")
    assert "j < i" in err.message


# fresh8: norms √(number present), the Gram form's row summed, instance 0's Gram matrix for every instance.
def gen_times_sqrt_count(n_examples, n_inst, n_features, feature_probability, device=None):
    x = _sparse((n_examples, n_inst, n_features), feature_probability, device)
    k = (x > 0).sum(-1, keepdim=True).float()
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12) * k.sqrt()


def _unit(v):
    n2 = (v**2).sum(-1)
    return n2, v / n2.sqrt().clamp_min(1e-12)[..., None]


def cd_gram_rows(v):
    n2, unit = _unit(v)
    return n2 / (unit @ (v.mT @ v) @ unit.mT).sum(-1).clamp_min(1e-30)


def cd_gram_first_instance(v):
    n2, unit = _unit(v)
    return n2 / ((unit @ (v[0].T @ v[0])) * unit).sum(-1).clamp_min(1e-30)


def test_fresh8_part4():
    assert_fails(checks.test_generate_dataset, gen_times_sqrt_count, "norm_sqrt_count")
    assert_fails(checks.test_compute_dimensionality, cd_gram_rows, "gram_row_sum")
    assert_fails(checks.test_compute_dimensionality, cd_gram_first_instance, "instances_mixed")


def lr_warmup_fraction(step, steps, warmup_steps):
    w = int(warmup_steps * steps)
    if step < w:
        return step / w
    return 0.5 * (1 + math.cos(math.pi * (step - w) / (steps - w)))


def lr_quadratic_warmup(step, steps, warmup_steps):
    if step < warmup_steps:
        return (step / warmup_steps) ** 2
    return 0.5 * (1 + math.cos(math.pi * (step - warmup_steps) / (steps - warmup_steps)))


def test_warmup_ramp_named():
    err = assert_fails(checks.test_warmup_cosine_lr, lr_warmup_fraction, "warmup_length")
    assert "fraction" in err.hint
    err = assert_fails(checks.test_warmup_cosine_lr, lr_quadratic_warmup, "warmup_shape")
    assert "quadratic" in err.hint
