"""Proofs for the fresh18 held-out fixes in part 3: a constant factor d_hidden in dimensions_per_feature named on
either side (numerator or a mean over d_hidden in the denominator), the einsum with two instance letters, and one
norm of the whole instance in compute_dimensionality (shared with part 4) listing both slips."""

from __future__ import annotations

import einops
import torch

import tests.part3_feature_geometry as p3
from tests.proving import assert_fails


def dpf_mean_hidden(W):
    return W.shape[1] / W.pow(2).mean(1).sum(-1)


def dpf_instances_crossed(W):
    return W.shape[1] / torch.einsum("idf,jdf->i", W, W)


def cd_frob_numerator(W):
    unit = W / W.norm(dim=1, keepdim=True).clamp_min(1e-12)
    den = einops.einsum(unit, W, "k d i, k d j -> k i j").pow(2).sum(-1)
    return W.pow(2).sum((1, 2))[:, None] / den.clamp_min(1e-12)


def test_dpf_factor_either_side():
    err = assert_fails(p3.test_dimensions_per_feature, dpf_mean_hidden, "numerator")
    assert "d_hidden = 5 too many" in err.hint and "denominator a mean over d_hidden" in err.hint
    err = assert_fails(p3.test_dimensions_per_feature, dpf_instances_crossed, "instances_crossed")
    assert "'idf,jdf->i'" in err.hint


def test_cd_whole_instance_norm():
    err = assert_fails(p3.test_compute_dimensionality, cd_frob_numerator, "one_norm")
    assert "numerator" in err.hint and "unit vectors" in err.hint
