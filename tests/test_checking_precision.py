"""Proofs for tests/precision.py: arithmetic in bfloat16/float16 is named (code low_precision), and what merely
looks rounding-sized (a small jitter, a small one-sided term) is not claimed as such."""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import tests.part1_superposition as part1
import tests.part2_privileged_basis as part2
import tests.part3_feature_geometry as part3
from solutions.part1_superposition import ToyModel
from solutions.part2_privileged_basis import NeuronModel
from tests.precision import precision_reading
from tests.proving import assert_fails


class Bf16Products(ToyModel):
    def forward(self, features):
        x, W = features.bfloat16(), self.W.bfloat16()
        h = einops.einsum(x, W, "... i f, i d f -> ... i d")
        return F.relu(einops.einsum(h, W, "... i d, i d f -> ... i f").float() + self.b_final)


class Bf16Hidden(NeuronModel):
    def forward(self, features):
        h = F.relu(einops.einsum(features, self.W, "... i f, i d f -> ... i d")).bfloat16().float()
        return F.relu(einops.einsum(h, self.W, "... i d, i d f -> ... i f") + self.b_final)


def half_dimensionality(W):
    Wh = W.half()
    norms_sq = Wh.pow(2).sum(1)
    den = einops.einsum(Wh, Wh, "inst d i, inst d j -> inst i j").pow(2).sum(-1)
    return torch.where(den > 0, norms_sq**2 / den, torch.zeros_like(norms_sq)).to(W.dtype)


def test_bfloat16_products_in_the_toy_forward():
    err = assert_fails(part1.test_forward, Bf16Products, "low_precision")
    assert "the size of bfloat16 rounding" in err.hint


def test_bfloat16_hidden_layer_in_the_neuron_forward():
    err = assert_fails(part2.test_neuron_forward, Bf16Hidden, "low_precision")
    assert "the size of bfloat16 rounding" in err.hint


def test_float16_dimensionality_is_on_the_float16_grid():
    err = assert_fails(part3.test_compute_dimensionality, half_dimensionality, "low_precision")
    assert "exactly a float16 number" in err.hint


def _values(seed: int = 0) -> torch.Tensor:
    return torch.randn(64, 8, generator=torch.Generator().manual_seed(seed))


def test_reading_names_each_dtype_from_its_grid():
    e = _values()
    for low, name in ((torch.bfloat16, "bfloat16"), (torch.float16, "float16")):
        found = precision_reading(e.to(low).float(), e, 1e-4, 1e-5)
        assert found is not None and found[0] == "low_precision" and f"exactly a {name} number" in found[1]


def test_reading_leaves_a_jitter_and_a_small_term_alone():
    e = _values()
    jitter = e + 1e-3 * _values(1)  # unbiased and rounding-sized, but off every grid
    assert precision_reading(jitter, e, 1e-4, 1e-5) is None
    one_sided = e + 1e-3 * e.abs()  # too high everywhere: a small added term, not rounding
    assert precision_reading(one_sided, e, 1e-4, 1e-5, grid_only=False) is None
    assert precision_reading(e * 1.05, e, 1e-4, 1e-5, grid_only=False) is None  # 5%: beyond a few roundings
    assert precision_reading(e.to(torch.bfloat16).float(), e, 1e-2, 1e-2) is None  # within the caller's tolerance


def test_reading_takes_unbiased_rounding_sized_errors_only_when_asked():
    e = _values()
    noisy = e * (1 + 1e-2 * torch.sign(_values(2)))  # ±1% relative: bfloat16-sized, both ways, off the grids
    assert precision_reading(noisy, e, 1e-4, 1e-5) is None
    found = precision_reading(noisy, e, 1e-4, 1e-5, grid_only=False)
    assert found is not None and "the size of bfloat16 rounding" in found[1]


def test_bfloat16_numbers_inside_float16_range_are_named_bfloat16():
    e = 0.5 + 1.5 * torch.rand(64, 8, generator=torch.Generator().manual_seed(3))  # every bf16 number here is fp16 too
    found = precision_reading(e.to(torch.bfloat16).float(), e, 1e-4, 1e-5)
    assert found is not None and "exactly a bfloat16 number" in found[1]
