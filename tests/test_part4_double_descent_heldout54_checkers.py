"""Proofs for section 4 (held-out round BA). generate_batch: a presence pattern returned as numbers ((x > 0).float())
is named as such, no longer as a float16 rounding (that reading now needs the values to agree to float16 precision).
warmup_cosine_lr: a progress that runs from 1 down to 0 and cos(π progress)² are named next to the forms they equal.
compute_dimensionality: the row norm of the overlaps where its square belongs has its norm powers read back
(`norm_powers`, the probe part 3 shares); Σ_j cos²_ij ‖v_j‖ names the cosine form's unsquared norm next to the
one-side-unit Gram.
generate_dataset: a value law is named only when the whole distribution matches (exponential draws no longer pass for
a product of uniforms), a floor or offset in the values and a mean of two uniforms are named, and a presence rate of
√p or 2p - p² is read back. The round's correct variants pass."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

import tests.part4_double_descent as checks
from solutions.part4_double_descent import DoubleDescentModel
from tests.proving import assert_fails, assert_passes


def _batch(fn):
    return type("DDM", (DoubleDescentModel,), {"generate_batch": fn})


def test_presence_pattern_is_not_called_float16():
    err = assert_fails(
        checks.test_generate_batch, _batch(lambda self, b=None: (self.train_data > 0).float()), "transformed"
    )
    assert "presence pattern" in err.hint and "float16" not in err.hint


def test_batch_variants_pass():
    for fn in (
        lambda self, b=None: F.normalize(self.train_data, dim=-1),
        lambda self, b=None: self.get_buffer("train_data"),
        lambda self, b=None: self.train_data[torch.arange(self.n_train, device=self.train_data.device)],
        lambda self, b=None: dict(self.named_buffers())["train_data"],
        lambda self, b=None: self.train_data * (self.train_data.sum(-1, keepdim=True) > 0),
    ):
        assert_passes(checks.test_generate_batch, _batch(fn))


def _lr(decay):
    def warmup_cosine_lr(step, steps, warmup_steps):
        if step < warmup_steps:
            return step / warmup_steps
        return decay(step, steps, warmup_steps)

    return warmup_cosine_lr


def test_fraction_left_is_named_with_the_rising_cosine():
    lr = _lr(lambda s, n, w: 0.5 * (1 + math.cos(math.pi * (n - s) / (n - w))))
    err = assert_fails(checks.test_warmup_cosine_lr, lr, "cosine_rising")
    assert "(steps - step)" in err.hint and "1 - cos" in err.hint


def test_cosine_squared_is_named_with_the_full_period():
    lr = _lr(lambda s, n, w: math.cos(math.pi * (s - w) / (n - w)) ** 2)
    err = assert_fails(checks.test_warmup_cosine_lr, lr, "full_cosine")
    assert "cos(π progress)²" in err.hint


def test_schedule_variants_pass():
    assert_passes(checks.test_warmup_cosine_lr, _lr(lambda s, n, w: math.cos(math.pi / 2 * (s - w) / (n - w)) ** 2))
    assert_passes(checks.test_warmup_cosine_lr, _lr(lambda s, n, w: (1 + math.cos((w - s) * math.pi / (n - w))) / 2))

    def lr_numpy(step, steps, warmup_steps):
        if warmup_steps > 0 and step < warmup_steps:
            return np.float64(step) / warmup_steps
        return 0.5 * (1 + np.cos(np.pi * (step - warmup_steps) / (steps - warmup_steps)))

    assert_passes(checks.test_warmup_cosine_lr, lr_numpy)


def cd_cos2_unsquared_norm(v):
    n = v.norm(dim=-1)
    u = F.normalize(v, dim=-1)
    den = ((u @ u.mT).pow(2) * n[:, None, :]).sum(-1)
    return torch.where(n > 0, n**2 / den.clamp_min(1e-30), 0.0)


def test_cosines_weighted_by_unsquared_norms_are_named():
    err = assert_fails(checks.test_compute_dimensionality, cd_cos2_unsquared_norm, "gram_one_side_unit")
    assert "cos²_ij ‖v_j‖²" in err.hint and "one side unit" in err.hint


def test_dimensionality_variants_pass():
    def cd4_cosine(v):
        ns = (v * v).sum(-1)
        cos = torch.cosine_similarity(v.unsqueeze(2), v.unsqueeze(1), dim=-1)
        return torch.where(ns > 0, ns / (cos**2 * ns.unsqueeze(1)).sum(-1).clamp_min(1e-30), torch.zeros_like(ns))

    def cd4_diag(v):
        ov = (v / v.norm(dim=-1, keepdim=True).clamp_min(1e-12)) @ v.mT
        num = ov.diagonal(dim1=-2, dim2=-1) ** 2
        return torch.where(num > 0, num / (ov**2).sum(-1).clamp_min(1e-30), 0.0)

    for fn in (cd4_cosine, cd4_diag):
        assert_passes(checks.test_compute_dimensionality, fn)


def _dataset(mask, values):
    def generate_dataset(n_examples, n_inst, n_features, feature_probability, device=None):
        shape = (n_examples, n_inst, n_features)
        x = torch.where(mask(shape, feature_probability, device), values(shape, device), 0.0)
        return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)

    return generate_dataset


_mask = lambda s, p, d: torch.rand(s, device=d) < p
_rand = lambda s, d: torch.rand(s, device=d)


def test_exponential_values_are_not_called_a_product():
    err = assert_fails(
        checks.test_generate_dataset, _dataset(_mask, lambda s, d: -torch.rand(s, device=d).log()), "exponential_values"
    )
    assert "exponential" in err.hint


def test_values_with_a_floor_are_named():
    err = assert_fails(
        checks.test_generate_dataset, _dataset(_mask, lambda s, d: torch.rand(s, device=d) + 0.5), "value_floor"
    )
    assert "offset" in err.hint
    assert_fails(
        checks.test_generate_dataset, _dataset(_mask, lambda s, d: 0.1 + 0.9 * torch.rand(s, device=d)), "value_floor"
    )


def test_mean_of_two_uniforms_is_named():
    values = lambda s, d: (torch.rand(s, device=d) + torch.rand(s, device=d)) / 2
    assert_fails(checks.test_generate_dataset, _dataset(_mask, values), "summed_values")


def test_presence_rules_are_read_back():
    err = assert_fails(
        checks.test_generate_dataset, _dataset(lambda s, p, d: torch.rand(s, device=d) < p**0.5, _rand), "presence_rule"
    )
    assert "√p" in err.hint
    two = lambda s, p, d: (torch.rand(s, device=d) < p) | (torch.rand(s, device=d) < p)
    err = assert_fails(checks.test_generate_dataset, _dataset(two, _rand), "presence_rule")
    assert "OR-ed" in err.hint


def test_dataset_variants_pass():
    floor = _dataset(
        lambda s, p, d: (torch.rand(s, device=d) + p).floor().bool(), lambda s, d: 1 - torch.rand(s, device=d)
    )
    below_p = lambda s, p, d: torch.rand(s, device=d) < p

    def transposed(n_examples, n_inst, n_features, feature_probability, device=None):
        s = (n_examples, n_features, n_inst)
        x = torch.rand(s, device=device) * (torch.rand(s, device=device) < feature_probability)
        return F.normalize(x.transpose(1, 2).contiguous(), dim=-1)

    for fn in (floor, transposed, _dataset(below_p, lambda s, d: torch.empty(s, device=d).uniform_(0, 2))):
        assert_passes(checks.test_generate_dataset, fn)


def test_mean_as_divisor_is_named():
    def generate_dataset(n_examples, n_inst, n_features, feature_probability, device=None):
        shape = (n_examples, n_inst, n_features)
        x = torch.where(torch.rand(shape, device=device) < feature_probability, torch.rand(shape, device=device), 0.0)
        return x / x.mean(-1, keepdim=True).clamp_min(1e-12)

    err = assert_fails(checks.test_generate_dataset, generate_dataset, "mean_divisor")
    assert "x.mean(-1, keepdim=True)" in err.hint


def test_schedule_one_step_late_is_named():
    def warmup_cosine_lr(step, steps, warmup_steps):
        step = step - 1  # steps counted from 1
        if step < warmup_steps:
            return max(step, 0) / warmup_steps if warmup_steps else 1.0
        return 0.5 * (1 + math.cos(math.pi * (step - warmup_steps) / (steps - warmup_steps)))

    err = assert_fails(checks.test_warmup_cosine_lr, warmup_cosine_lr, "schedule_shifted")
    assert "1 step late" in err.message


def test_unsquared_row_norm_of_the_overlaps_is_named():
    def compute_dimensionality(v):
        ns = v.pow(2).sum(-1)
        u = v / ns.sqrt().clamp_min(1e-12)[..., None]
        return torch.where(ns > 0, ns / (u @ v.mT).norm(dim=-1).clamp_min(1e-30), 0.0)

    assert_fails(checks.test_compute_dimensionality, compute_dimensionality, "norm_powers")
