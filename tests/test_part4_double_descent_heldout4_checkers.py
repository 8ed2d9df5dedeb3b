"""Proofs for the fresh16 held-out fixes in part 4: examples divided by the mean example norm (one divisor for all,
or one per instance: the present values stay uniform on [0, 1/divisor]), and distances (torch.cdist) where dot
products belong."""

from __future__ import annotations

import torch

import tests.part4_double_descent as p4
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
