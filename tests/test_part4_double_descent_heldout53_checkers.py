"""Proofs for section 4 (held-out round AZ): compute_dimensionality's tiny-vector probe no longer crashes when a
threshold sets the tiny vector to 0 (it names the threshold), and runs before the pentagons, so an eps added to the
denominator of the unnormalised form ‖v‖⁴ / (Σ_j (v·v_j)² + e) is solved from two sizes instead of being read as an
offset. generate_dataset names a presence mask (or whole examples) drawn for fewer examples and reused: many pairs of
examples share one set of six or more present features, far more than independent draws give. The round's correct
variants pass. warmup_cosine_lr reads back a schedule that is still linear or a cosine: step 0 alone wrong (step 1's
value from a max(step, 1), which the generic reading blamed on an index), a warm-up (step + 0.5) / warmup_steps, and a
cosine whose progress has another start or length ((steps - warmup_steps + 1), (steps - 1), a half-step shift).
compute_dimensionality names a constant added to the norm used to normalise (solved per vector) and ‖v_i‖² taken as a
mean over d; generate_dataset names values drawn as a power of a uniform (√U, U²); generate_batch names every example
replaced by one row (the mean example)."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

import tests.part4_double_descent as checks
from solutions.part4_double_descent import DoubleDescentModel
from tests.proving import assert_fails, assert_passes


def _gram4(vectors):
    return torch.einsum("kid,kjd->kij", vectors, vectors).pow(2).sum(-1)


def cd_threshold_den(vectors):
    norm_sq = vectors.pow(2).sum(-1)
    den = _gram4(vectors)
    return torch.where(den > 1e-6, norm_sq**2 / den, 0.0)


def cd_den_eps(vectors):
    return vectors.pow(2).sum(-1) ** 2 / (_gram4(vectors) + 1e-4)


def test_threshold_on_the_denominator_is_named_not_a_crash():
    err = assert_fails(checks.test_compute_dimensionality, cd_threshold_den, "small_vector_zeroed")
    assert "threshold" in err.hint and "denominator > 0" in err.hint


def test_eps_in_the_unnormalised_denominator_is_solved():
    err = assert_fails(checks.test_compute_dimensionality, cd_den_eps, "small_vector_unnormalised_eps")
    assert "e = 0.0001" in err.hint and "unnormalised form" in err.hint


def _unit(x):
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def gd_mask_repeated_halves(n_examples, n_inst, n_features, feature_probability, device=None):
    half = torch.rand((n_examples + 1) // 2, n_inst, n_features, device=device) < feature_probability
    present = half.repeat(2, 1, 1)[:n_examples]
    return _unit(torch.where(present, torch.rand(n_examples, n_inst, n_features, device=device), 0.0))


def gd_examples_tiled(n_examples, n_inst, n_features, feature_probability, device=None):
    shape = ((n_examples + 9) // 10, n_inst, n_features)
    x = torch.where(torch.rand(shape, device=device) < feature_probability, torch.rand(shape, device=device), 0.0)
    return _unit(x).repeat(10, 1, 1)[:n_examples]


def test_reused_mask_is_named():
    err = assert_fails(checks.test_generate_dataset, gd_mask_repeated_halves, "repeated_masks")
    assert "3000 examples apart" in err.message and "only the presence mask" in err.message


def test_tiled_examples_are_named_before_the_rates():
    err = assert_fails(checks.test_generate_dataset, gd_examples_tiled, "repeated_masks")
    assert "whole examples are reused" in err.message


def _schedule(warm, progress):
    def warmup_cosine_lr(step, steps, warmup_steps):
        if step < warmup_steps:
            return warm(step, warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * progress(step, steps, warmup_steps)))

    return warmup_cosine_lr


def _linear(step, warmup_steps):
    return step / warmup_steps


def _progress(step, steps, warmup_steps):
    return (step - warmup_steps) / (steps - warmup_steps)


def test_step_zero_as_step_one_is_named_not_an_index():
    lr = _schedule(lambda step, warmup_steps: max(step, 1) / warmup_steps, _progress)
    err = assert_fails(checks.test_warmup_cosine_lr, lr, "warmup_step_zero")
    assert "max(step, 1)" in err.hint and "index" not in err.hint


def test_shifted_warmup_is_read_back():
    lr = _schedule(lambda step, warmup_steps: (step + 0.5) / warmup_steps, _progress)
    err = assert_fails(checks.test_warmup_cosine_lr, lr, "warmup_readback")
    assert "(step + 0.5) / warmup_steps" in err.message


def test_cosine_progress_length_and_start_are_read_back():
    plus_one = _schedule(_linear, lambda step, steps, warmup_steps: (step - warmup_steps) / (steps - warmup_steps + 1))
    err = assert_fails(checks.test_warmup_cosine_lr, plus_one, "progress_readback")
    assert "steps - warmup_steps + 1 = 181" in err.hint
    steps_minus_one = _schedule(_linear, lambda step, steps, warmup_steps: (step - warmup_steps) / (steps - 1))
    err = assert_fails(checks.test_warmup_cosine_lr, steps_minus_one, "progress_readback")
    assert "steps - 1 = 199" in err.hint
    half = _schedule(_linear, lambda step, steps, warmup_steps: (step - warmup_steps + 0.5) / (steps - warmup_steps))
    err = assert_fails(checks.test_warmup_cosine_lr, half, "progress_readback")
    assert "step - warmup_steps + 0.5" in err.hint


def _dims(unit, vectors):
    return vectors.pow(2).sum(-1) / torch.einsum("kid,kjd->kij", unit, vectors).pow(2).sum(-1).clamp_min(1e-30)


def test_constant_added_to_the_norm_is_solved():
    err = assert_fails(
        checks.test_compute_dimensionality,
        lambda v: _dims(v / (v.norm(dim=-1, keepdim=True) + 1e-2), v),
        "norm_plus_constant",
    )
    assert "‖v_i‖ + 0.01" in err.message
    err = assert_fails(
        checks.test_compute_dimensionality,
        lambda v: _dims(v / (v.pow(2).sum(-1, keepdim=True) + 1e-3).sqrt(), v),
        "norm_plus_constant",
    )
    assert "‖v_i‖² + 0.001" in err.message


def cd_mean_norm(vectors):
    mean_sq = vectors.pow(2).mean(-1)
    unit = vectors / mean_sq.sqrt().clamp_min(1e-12)[..., None]
    return mean_sq / torch.einsum("kid,kjd->kij", unit, vectors).pow(2).sum(-1).clamp_min(1e-30)


def test_mean_over_d_is_named():
    err = assert_fails(checks.test_compute_dimensionality, cd_mean_norm, "mean_over_d")
    assert "D_i / 9" in err.hint


def gd_sqrt_values(n_examples, n_inst, n_features, feature_probability, device=None):
    shape = (n_examples, n_inst, n_features)
    present = torch.rand(shape, device=device) < feature_probability
    return _unit(torch.where(present, torch.rand(shape, device=device).sqrt(), 0.0))


def gd_squared_values(n_examples, n_inst, n_features, feature_probability, device=None):
    shape = (n_examples, n_inst, n_features)
    present = torch.rand(shape, device=device) < feature_probability
    return _unit(torch.where(present, torch.rand(shape, device=device) ** 2, 0.0))


def test_power_of_a_uniform_is_named():
    err = assert_fails(checks.test_generate_dataset, gd_sqrt_values, "power_values")
    assert "U^(1/2)" in err.hint
    assert_fails(checks.test_generate_dataset, gd_squared_values, "power_values")


class MeanExampleBatch(DoubleDescentModel):
    def generate_batch(self, batch_size=None):
        return self.train_data.mean(0, keepdim=True).expand_as(self.train_data)


def test_mean_example_repeated_is_named():
    err = assert_fails(checks.test_generate_batch, MeanExampleBatch, "one_row_repeated")
    assert "the mean example" in err.message


# --- the round's correct variants -------------------------------------------------------------------------------


def cd_cdist(vectors):
    norm_sq = vectors.pow(2).sum(-1)
    dots = (norm_sq[..., :, None] + norm_sq[..., None, :] - torch.cdist(vectors, vectors) ** 2) / 2
    return torch.where(norm_sq > 0, norm_sq**2 / dots.pow(2).sum(-1).clamp_min(1e-30), 0.0)


def cd_gram_normalize(vectors):
    unit = F.normalize(vectors, dim=-1)
    den = ((unit @ (vectors.mT @ vectors)) * unit).sum(-1)
    return torch.nan_to_num(vectors.pow(2).sum(-1) / den, nan=0.0)


def gd_same_draw(n_examples, n_inst, n_features, feature_probability, device=None):
    u = torch.rand(n_examples, n_inst, n_features, device=device)
    x = torch.where(u < feature_probability, u, 0.0)  # U[0, p] values: the scale goes with the normalisation
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def gd_transposed(n_examples, n_inst, n_features, feature_probability, device=None):
    shape = (n_inst, n_examples, n_features)
    x = torch.where(torch.rand(shape, device=device) < feature_probability, torch.rand(shape, device=device), 0.0)
    return (x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)).transpose(0, 1)


def lr_negative_progress(step, steps, warmup_steps):
    if step < warmup_steps:
        return step / warmup_steps
    return 0.5 * (1 + math.cos(math.pi * (step - warmup_steps) / (warmup_steps - steps)))  # cos is even


def lr_numpy_min(step, steps, warmup_steps):
    t = np.clip((step - warmup_steps) / (steps - warmup_steps), 0, 1)
    ramp = step / warmup_steps if warmup_steps else 1.0
    return float(min(ramp, 0.5 * (1 + np.cos(np.pi * t))))


class RenormalisedBatch(DoubleDescentModel):
    def generate_batch(self, batch_size=None):
        return F.normalize(self.train_data, dim=-1)  # a no-op on unit or all-zero examples


def test_round_az_correct_variants_pass():
    assert_passes(checks.test_compute_dimensionality, cd_cdist)
    assert_passes(checks.test_compute_dimensionality, cd_gram_normalize)
    assert_passes(checks.test_generate_dataset, gd_same_draw)
    assert_passes(checks.test_generate_dataset, gd_transposed)
    assert_passes(checks.test_warmup_cosine_lr, lr_negative_progress)
    assert_passes(checks.test_warmup_cosine_lr, lr_numpy_min)
    assert_passes(checks.test_generate_batch, RenormalisedBatch)
