"""Proofs for section 4 (held-out round BB): compute_dimensionality names two slips at once with part 3's pair
read-back (|·| overlaps with the self term added as ‖v_i‖²); generate_batch's model has a non-uniform importance, so
train_data * self.importance is caught and named (weighted_by_model); generate_dataset names a float64 data set
(float64_dataset, where the shared dtype hint named other sources) and values drawn once per feature, shared by every
example and instance (values_shared_all, where the hint named a draw shared over instances only). warmup_cosine_lr
names a slip in each phase at once (tests/part4_double_descent_schedule_pairs.py: the warm-up of one catalogued
slip, the decay of another); compute_dimensionality names a float64 result for float32 vectors (upcast, part 3's
read-back) and a rounded result (rounded_output); a warm-up read back as a power law names warmup_steps / step
(warmup_shape); a batch that depends on a parameter of the model (train_data + self.b_final) names the parameter
(parameter_in_batch) where the hint said the data had become a parameter. generate_dataset reads back a divisor
‖x‖^a from the output at any presence rate (tests/part4_double_descent_norm_powers.py): ‖x‖² with dense examples
(norm_squared) and ‖x‖^0.5 (norm_power, where the hint said "not normalised"). generate_batch names absent features
filled with small values (train_data.clamp(min=1e-6) passed the value tolerance: absent_filled). The round's correct
variants pass."""

from __future__ import annotations

import math

import einops
import torch
import torch.nn.functional as F

import solutions.part4_double_descent as ref
import tests.part4_double_descent as checks
from tests.proving import assert_fails, assert_passes


def cd_abs_off_diagonal_plus_self(v):
    n2 = v.pow(2).sum(-1)
    unit = v / n2.sqrt().clamp_min(1e-12)[..., None]
    dots = einops.einsum(unit, v, "k i d, k j d -> k i j")
    eye = torch.eye(v.shape[1], dtype=torch.bool, device=v.device)
    den = dots.abs().masked_fill(eye, 0).sum(-1) + n2
    return torch.where(n2 > 0, n2 / den, torch.zeros_like(n2))


def test_two_slips_named():
    assert_fails(checks.test_compute_dimensionality, cd_abs_off_diagonal_plus_self, "two_slips")


def test_correct_variants_pass():
    def gram_matmul(v):
        n2 = v.pow(2).sum(-1)
        unit = v / n2.sqrt().clamp_min(1e-12)[..., None]
        den = ((unit @ (v.mT @ v)) * unit).sum(-1)
        return torch.where(n2 > 0, n2 / den.clamp_min(1e-30), torch.zeros_like(n2))

    assert_passes(checks.test_compute_dimensionality, gram_matmul)


class ImportanceWeighted(ref.DoubleDescentModel):
    def generate_batch(self, batch_size=None):
        return self.train_data * self.importance


def test_importance_weighted_batch_named():
    assert_fails(checks.test_generate_batch, ImportanceWeighted, "weighted_by_model")


def gen_float64(n_examples, n_inst, n_features, p, device=None):
    shape = (n_examples, n_inst, n_features)
    x = torch.rand(shape, device=device, dtype=torch.float64)
    x = torch.where(torch.rand(shape, device=device, dtype=torch.float64) < p, x, 0.0)
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def gen_values_per_feature(n_examples, n_inst, n_features, p, device=None):
    present = torch.rand(n_examples, n_inst, n_features, device=device) < p
    x = present * torch.rand(n_features, device=device)
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def test_dataset_slips_named():
    assert_fails(checks.test_generate_dataset, gen_float64, "float64_dataset")
    assert_fails(checks.test_generate_dataset, gen_values_per_feature, "values_shared_all")


def test_dataset_correct_variants_pass():
    def one_uniform(n_examples, n_inst, n_features, p, device=None):
        u = torch.rand(n_examples, n_inst, n_features, device=device)
        return F.normalize(torch.where(u < p, u / p, 0.0), dim=-1)

    def unscaled_values(n_examples, n_inst, n_features, p, device=None):
        u = torch.rand(n_examples, n_inst, n_features, device=device)
        x = torch.where(u < p, u, torch.zeros_like(u))  # U[0, p]: the scale cancels in the normalisation
        return torch.nan_to_num(x / x.norm(dim=-1, keepdim=True))

    for impl in (one_uniform, unscaled_values):
        assert_passes(checks.test_generate_dataset, impl)


def lr_two_off_by_one(step, steps, warmup_steps):
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    return 0.5 * (1 + math.cos(math.pi * (step - warmup_steps) / (steps - warmup_steps - 1)))


def test_schedule_two_slips_named():
    err = assert_fails(checks.test_warmup_cosine_lr, lr_two_off_by_one, "two_slips")
    assert "(step + 1)" in err.hint and "steps - warmup_steps - 1" in err.hint


def test_schedule_correct_variant_passes():
    def cos_squared(step, steps, warmup_steps):
        if warmup_steps > 0 and step <= warmup_steps:
            return step / warmup_steps
        return math.cos(math.pi / 2 * (step - warmup_steps) / (steps - warmup_steps)) ** 2

    assert_passes(checks.test_warmup_cosine_lr, cos_squared)


def test_upcast_named():
    err = assert_fails(checks.test_compute_dimensionality, lambda v: ref.compute_dimensionality(v.double()), "upcast")
    assert "v.double()" in err.hint


def test_rounded_output_named():
    assert_fails(
        checks.test_compute_dimensionality, lambda v: ref.compute_dimensionality(v).round(decimals=2), "rounded_output"
    )


def lr_inverted_ramp(step, steps, warmup_steps):
    if step < warmup_steps:
        return warmup_steps / step if step else 0.0
    return 0.5 * (1 + math.cos(math.pi * (step - warmup_steps) / (steps - warmup_steps)))


def test_inverted_ramp_named():
    assert "inverted" in assert_fails(checks.test_warmup_cosine_lr, lr_inverted_ramp, "warmup_shape").hint


class PlusBias(ref.DoubleDescentModel):
    def generate_batch(self, batch_size=None):
        return self.train_data + self.b_final


def test_parameter_in_batch_named():
    assert "b_final" in assert_fails(checks.test_generate_batch, PlusBias, "parameter_in_batch").message


def _divided(divisor):
    def generate_dataset(n_examples, n_inst, n_features, p, device=None):
        shape = (n_examples, n_inst, n_features)
        x = torch.where(torch.rand(shape, device=device) < p, torch.rand(shape, device=device), 0.0)
        return x / divisor(x).clamp_min(1e-12)

    return generate_dataset


def test_norm_powers_named():
    dense_squared = _divided(lambda x: x.pow(2).sum(-1, keepdim=True))

    def sparsity_as_p(n_examples, n_inst, n_features, p, device=None):  # two slips: 1 - p, and the squared norm
        return dense_squared(n_examples, n_inst, n_features, 1 - p, device)

    assert_fails(checks.test_generate_dataset, sparsity_as_p, "norm_squared")
    root = _divided(lambda x: x.norm(dim=-1, keepdim=True).sqrt())
    assert "square root" in assert_fails(checks.test_generate_dataset, root, "norm_power").hint


class ClampedBatch(ref.DoubleDescentModel):
    def generate_batch(self, batch_size=None):
        return self.train_data.clamp(min=1e-6)


class RenormalisedBatch(ref.DoubleDescentModel):
    def generate_batch(self, batch_size=None):
        return F.normalize(self.train_data, dim=-1)


def test_absent_filled_named():
    assert_fails(checks.test_generate_batch, ClampedBatch, "absent_filled")
    assert_passes(checks.test_generate_batch, RenormalisedBatch)
