"""Proofs for part 4's fresh21 fixes: generate_dataset squeezed (caught by a one-instance call), generate_batch
returning half of the training set (a train/validation split, named by the slice it returned), and part 3's
dimensionality applied to vectors.reshape(inst, d, n) (a reshape where a transpose belongs)."""

from __future__ import annotations

import torch

import tests.part4_double_descent as p4
from solutions.part4_double_descent import DoubleDescentModel, generate_dataset
from tests.proving import assert_fails


def gen_squeezed(*args, **kwargs):
    return generate_dataset(*args, **kwargs).squeeze()


def gb_first_half(self, batch_size=None):
    return self.train_data[: self.train_data.shape[0] // 2]


def cd_reshaped(v):
    k, n, d = v.shape
    W = v.reshape(k, d, n)
    G = W.mT @ W
    sq = G.diagonal(dim1=-2, dim2=-1)
    return torch.where(sq > 0, sq**2 / G.pow(2).sum(-1).clamp_min(1e-30), 0.0)


def test_squeezed_dataset_is_named():
    err = assert_fails(p4.test_generate_dataset, gen_squeezed, "squeezed")
    assert "inst" in err.message


def test_half_of_the_training_set_is_named():
    model = type("Variant", (DoubleDescentModel,), {"generate_batch": gb_first_half})
    err = assert_fails(p4.test_generate_batch, model, "training_slice")
    assert "train/validation split" in err.hint


def test_reshape_for_transpose_is_named():
    assert_fails(p4.test_compute_dimensionality, cd_reshaped, "reshape_not_transpose")


def cd_numerator_over_vectors(v):
    norm_sq = (v**2).sum(-2, keepdim=True).expand_as(v).sum(-1) / v.shape[-1]
    unit = v / v.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return norm_sq / (torch.einsum("kid,kjd->kij", unit, v) ** 2).sum(-1).clamp_min(1e-30)


def cd_numerator_mean_norm(v):
    norm_sq = (v**2).sum(-1).mean(-1, keepdim=True)
    unit = v / v.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return norm_sq / (torch.einsum("kid,kjd->kij", unit, v) ** 2).sum(-1).clamp_min(1e-12)


def test_numerator_over_the_vectors_axis_is_named():
    failure = assert_fails(p4.test_compute_dimensionality, cd_numerator_over_vectors, "numerator_axis")
    assert "(v**2).sum(-2).mean(-1)" in failure.hint
    failure = assert_fails(p4.test_compute_dimensionality, cd_numerator_mean_norm, "numerator_axis")
    assert "(v**2).mean(-2).sum(-1)" in failure.hint
