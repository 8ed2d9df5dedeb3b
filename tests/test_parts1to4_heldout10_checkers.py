"""Proofs for the fresh10 held-out fixes in parts 1-4: a float-equivalent training set accepted (F.normalize of unit
rows), p laid out along the batch, averaged anticorrelated activity, |z| output, L1-normalised dimensionality, the
self-term counted twice, rank/sum-of-norms/Gram-sum D*, renorm and other-axis norms in generate_dataset, a sine
schedule, and a list returned by generate_batch."""

from __future__ import annotations

import math

import einops
import torch
import torch.nn.functional as F

import tests.part1_superposition as p1
import tests.part3_feature_geometry as p3
import tests.part4_double_descent as p4
from solutions.part1_superposition import CorrelatedToyModel, ToyModel
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


# ---------------- part 3
def d_rank(W):
    return torch.linalg.matrix_rank(W).float() / W.pow(2).sum((1, 2))


def d_sum_norms_sq(W):
    return W.shape[1] / W.norm(dim=1).sum(-1).pow(2)


def d_gram_sum(W):
    return W.shape[1] / (W.mT @ W).sum((1, 2))


def cd3_l1(W):
    norms_sq = W.pow(2).sum(1)
    unit = W / W.abs().sum(1, keepdim=True).clamp_min(1e-12)
    return norms_sq / einops.einsum(unit, W, "k d i, k d j -> k i j").pow(2).sum(-1).clamp_min(1e-30)


def cd3_self_twice(W):
    norms_sq = W.pow(2).sum(1)
    unit = W / norms_sq.sqrt().clamp_min(1e-12).unsqueeze(1)
    den = einops.einsum(unit, W, "k d i, k d j -> k i j").pow(2).sum(-1) + norms_sq
    return torch.where(den > 0, norms_sq / den.clamp_min(1e-30), torch.zeros_like(norms_sq))


def test_part3_dimensions():
    assert_fails(p3.test_dimensions_per_feature, d_rank, "numerator_rank")
    assert_fails(p3.test_dimensions_per_feature, d_sum_norms_sq, "norms_summed_squared")
    assert_fails(p3.test_dimensions_per_feature, d_gram_sum, "gram_sum")
    err = assert_fails(p3.test_compute_dimensionality, cd3_l1, "not_rotation_invariant")
    assert "L1" in err.hint
    assert_fails(p3.test_compute_dimensionality, cd3_self_twice, "self_term_twice")


# ---------------- part 1
def forward_abs(self, features):
    h = einops.einsum(features, self.W, "... i f, i d f -> ... i d")
    out = einops.einsum(h, self.W, "... i d, i d f -> ... i f") + self.b_final
    return out.abs()


def uncorrelated_interleaved(self, n, p):
    k, m = p.shape
    probs = p.repeat_interleave(n, 0).view(n, k, m)
    return torch.where(torch.rand(n, k, m) < probs, torch.rand(n, k, m), 0.0)


def anti_pmean(self, n, p):
    k, m = p.shape
    active = torch.rand(n, k, m) < 2 * p.mean(-1, keepdim=True)
    first = torch.rand(n, k, m) < 0.5
    present = torch.stack([active & first, active & ~first], -1).flatten(-2)
    return torch.where(present, torch.rand(n, k, 2 * m), 0.0)


def test_part1_heldout10():
    err = assert_fails(p1.test_forward, _sub(ToyModel, forward=forward_abs), "negative_not_zeroed")
    assert "abs" in err.hint
    model = _sub(CorrelatedToyModel, generate_uncorrelated_features=uncorrelated_interleaved)
    assert_fails(p1.test_generate_uncorrelated_features, model, "batch_layout")
    model = _sub(CorrelatedToyModel, generate_anticorrelated_features=anti_pmean)
    assert_fails(p1.test_generate_anticorrelated_features, model, "feature_mean_probability")
