"""Proofs for the fresh16 held-out fixes in part 4: examples divided by the mean example norm (one divisor for all,
or one per instance: the present values stay uniform on [0, 1/divisor]), and distances (torch.cdist) where dot
products belong."""

from __future__ import annotations

import math

import einops
import torch

import tests.part4_double_descent as p4
from solutions.part4_double_descent import DoubleDescentModel
from tests.proving import assert_fails


def _draw(n, k, f, p, device):
    s = (n, k, f)
    return torch.where(torch.rand(s, device=device) < p, torch.rand(s, device=device), 0.0)


def gen_mean_norm(n_examples, n_inst, n_features, feature_probability, device=None):
    x = _draw(n_examples, n_inst, n_features, feature_probability, device)
    return x / x.norm(dim=-1, keepdim=True).mean()


def gen_instance_norm(n_examples, n_inst, n_features, feature_probability, device=None):
    x = _draw(n_examples, n_inst, n_features, feature_probability, device)
    return x / x.norm(dim=(0, 2), keepdim=True) * torch.arange(1.0, n_inst + 1, device=device)[:, None] * 20


def cd_cdist(vectors):
    n2 = (vectors**2).sum(-1)
    unit = vectors / n2.sqrt().clamp_min(1e-12)[..., None]
    return torch.where(n2 > 0, n2 / (torch.cdist(unit, vectors) ** 2).sum(-1).clamp_min(1e-30), 0.0)


def test_part4_fresh16_common_divisor():
    err = assert_fails(p4.test_generate_dataset, gen_mean_norm, "common_divisor")
    assert "mean example norm" in err.hint
    err = assert_fails(p4.test_generate_dataset, gen_instance_norm, "common_divisor")
    assert "one number of that instance" in err.hint


def test_part4_fresh16_cdist():
    err = assert_fails(p4.test_compute_dimensionality, cd_cdist, "distances_not_dots")
    assert "torch.cdist" in err.hint


# fresh17: the warm-up's start value and shape, NaN rows from normalising again, overlaps squared as matrices
def _cosine(step, steps, warmup):
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / (steps - warmup)))


def lr_sine(step, steps, warmup):
    return math.sin(math.pi / 2 * step / warmup) if step < warmup else _cosine(step, steps, warmup)


def lr_half_cosine(step, steps, warmup):
    return (1 - math.cos(math.pi * step / warmup)) / 2 if step < warmup else _cosine(step, steps, warmup)


def lr_from_005(step, steps, warmup):
    return 0.05 + 0.95 * step / warmup if step < warmup else _cosine(step, steps, warmup)


def lr_exp(step, steps, warmup):
    return 10 ** (3 * (step / warmup - 1)) if step < warmup else _cosine(step, steps, warmup)


def gb_renormalised(self, batch_size=None):
    return self.train_data / self.train_data.norm(dim=-1, keepdim=True)


def _overlaps(v):
    n2 = (v**2).sum(-1)
    return n2, einops.einsum(v / n2.sqrt().clamp_min(1e-12)[..., None], v, "k i d, k j d -> k i j")


def cd_times_transpose(v):
    n2, ov = _overlaps(v)
    return n2 / (ov * ov.mT).sum(-1)


def cd_matrix_power(v):
    n2, ov = _overlaps(v)
    return n2 / torch.linalg.matrix_power(ov, 2).sum(-1).clamp_min(1e-12)


def test_part4_fresh17_warmup():
    err = assert_fails(p4.test_warmup_cosine_lr, lr_sine, "warmup_shape")
    assert "sine" in err.hint
    err = assert_fails(p4.test_warmup_cosine_lr, lr_half_cosine, "warmup_shape")
    assert "half cosine" in err.hint
    err = assert_fails(p4.test_warmup_cosine_lr, lr_from_005, "warmup_start")
    assert "starts at 0.05" in err.hint
    err = assert_fails(p4.test_warmup_cosine_lr, lr_exp, "warmup_shape")
    assert "linear from 0 gives" in err.hint


def test_part4_fresh17_batch_and_dimensionality():
    variant = type("Variant", (DoubleDescentModel,), {"generate_batch": gb_renormalised})
    err = assert_fails(p4.test_generate_batch, variant, "renormalised_nan")
    assert "zero norm" in err.hint
    assert_fails(p4.test_compute_dimensionality, cd_times_transpose, "overlap_times_transpose")
    assert_fails(p4.test_compute_dimensionality, cd_matrix_power, "overlap_matrix_power")
