"""Proofs for the fresh14 held-out fixes in part 4: a batch_size that slices the instance axis (seen only with a
batch size below n_inst), RMS normalisation, `** 1/2` precedence, part 3's function on v.T (transpose_all)."""

from __future__ import annotations

import torch

import tests.part4_double_descent as p4
from solutions.part4_double_descent import DoubleDescentModel
from tests.proving import assert_fails


def gb_slice_instances(self, batch_size=None):
    return self.train_data if batch_size is None else self.train_data[:, :batch_size]


def _draw(n, k, f, p, device):
    s = (n, k, f)
    return torch.where(torch.rand(s, device=device) < p, torch.rand(s, device=device), 0.0)


def gen_rms(n_examples, n_inst, n_features, feature_probability, device=None):
    x = _draw(n_examples, n_inst, n_features, feature_probability, device)
    return x / x.pow(2).mean(-1, keepdim=True).sqrt().clamp_min(1e-12)


def gen_precedence(n_examples, n_inst, n_features, feature_probability, device=None):
    x = _draw(n_examples, n_inst, n_features, feature_probability, device)
    return x / x.pow(2).sum(-1, keepdim=True).clamp_min(1e-12) ** 1 / 2


def test_part4_heldout14():
    variant = type("Variant", (DoubleDescentModel,), {"generate_batch": gb_slice_instances})
    err = assert_fails(p4.test_generate_batch, variant, "batch_size_slice")
    assert "inst" in err.hint
    err = assert_fails(p4.test_generate_dataset, gen_rms, "norm_rms")
    assert "mean" in err.hint
    err = assert_fails(p4.test_generate_dataset, gen_precedence, "power_precedence")


def cd4_part3_on_T(vectors):
    from solutions.part3_feature_geometry import compute_dimensionality

    return compute_dimensionality(vectors.permute(2, 1, 0))  # what vectors.T gives on a 3-d tensor


def test_part4_heldout14_transpose_all():
    err = assert_fails(p4.test_compute_dimensionality, cd4_part3_on_T, "transpose_all")
    assert "v.mT" in err.hint
