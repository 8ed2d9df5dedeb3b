"""Proofs for the round AH held-out part 4 mistakes: duplicates dropped or values reordered in the batch, a normal
draw compared with p, and a dimensionality with absolute coordinates, rescaled values or one triangle of overlaps."""

import einops
import torch

import tests.part4_double_descent as checks
from solutions.part4_double_descent import DoubleDescentModel
from tests.proving import assert_fails


def _unit(x):
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def _nu(v):
    n2 = v.pow(2).sum(-1)
    return n2, v / n2.sqrt().clamp_min(1e-12)[..., None]


def test_presence_from_a_normal_draw_is_named():
    def gd(n, k, f, p, device=None):
        s = (n, k, f)
        return _unit(torch.where(torch.randn(s, device=device) < p, torch.rand(s, device=device), 0.0))

    assert "Φ(0.1)" in assert_fails(checks.test_generate_dataset, gd, "presence_normal").hint


def test_batch_deduplicated_is_named():
    def gb(self, batch_size=None):
        return self.train_data.unique(dim=0)

    err = assert_fails(
        checks.test_generate_batch, type("DV", (DoubleDescentModel,), {"generate_batch": gb}), "deduplicated"
    )
    assert "unique(dim=0)" in err.hint


def test_batch_sorted_per_column_is_named():
    def gb(self, batch_size=None):
        return self.train_data.sort(dim=0).values

    err = assert_fails(
        checks.test_generate_batch, type("DV", (DoubleDescentModel,), {"generate_batch": gb}), "reordered"
    )
    assert "sort(dim=0)" in err.message


def test_dimensionality_abs_before_dot_is_named():
    def cd(v):
        n2, u = _nu(v)
        return n2 / (einops.einsum(u.abs(), v.abs(), "k i d, k j d -> k i j") ** 2).sum(-1).clamp_min(1e-30)

    assert_fails(checks.test_compute_dimensionality, cd, "abs_before_dot")


def test_dimensionality_rescaled_to_d_is_named():
    def cd(v):
        n2, u = _nu(v)
        d = n2 / (einops.einsum(u, v, "k i d, k j d -> k i j") ** 2).sum(-1).clamp_min(1e-30)
        return d * v.shape[-1] / d.sum(-1, keepdim=True).clamp_min(1e-30)

    assert "d = 3" in assert_fails(checks.test_compute_dimensionality, cd, "rescaled").hint


def test_dimensionality_diagonal_plus_twice_triangle_is_named():
    def cd(v):
        n2, u = _nu(v)
        ov = einops.einsum(u, v, "k i d, k j d -> k i j") ** 2
        return n2 / (ov.diagonal(dim1=-2, dim2=-1) + 2 * ov.triu(1).sum(-1)).clamp_min(1e-30)

    assert "not symmetric" in assert_fails(checks.test_compute_dimensionality, cd, "triangle_only").hint
