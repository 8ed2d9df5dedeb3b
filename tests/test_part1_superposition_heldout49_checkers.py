"""Proofs for part 1 after the confidence audit (fresh48): the per-cell value-law reading names a per-cell factor
only when it is read back (every cell divided by its own factor is U[low, high]); otherwise it states the spread of
the cell means and names no cause (it used to guess 'scaled by a per-cell table or tied to the presence draw'). The
past misleading trials of rounds 45-47 fail with hints that don't name their wrong causes."""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import tests.part1_superposition as C
from solutions.part1_superposition import CorrelatedToyModel, ToyModel
from tests.proving import assert_fails


def _s(m, b):
    return (b, m.cfg.n_inst, m.cfg.n_features)


def _drawn(values):
    def generate_batch(self, b):
        s = _s(self, b)
        return torch.where(torch.rand(s) < self.feature_probability, values(s), 0.0)

    return generate_batch


def _ramp(s):  # a per-feature weight from 0 to 1
    return torch.arange(s[-1]) / s[-1]


# ---------------------------------------------------------------- per-cell law: read back, or observed only
def test_per_feature_factor_read_back():
    model = type("V", (ToyModel,), {"generate_batch": _drawn(lambda s: torch.rand(s) * (0.6 + 0.4 * _ramp(s)))})
    err = assert_fails(C.test_generate_batch, model, "values_depend_on_cell")
    assert "read back" in err.hint and "times a factor of its own" in err.hint


def test_per_feature_power_not_called_scaled():  # same evidence (cell means differ), no factor: no cause named
    model = type("V", (ToyModel,), {"generate_batch": _drawn(lambda s: torch.rand(s) ** (1 + 0.3 * _ramp(s)))})
    err = assert_fails(C.test_generate_batch, model, "values_depend_on_cell")
    assert "scaled" not in err.hint and "tied to the presence" not in err.hint
    assert "no per-cell factor reproduces them" in err.hint


def test_per_instance_mixture_not_called_scaled():
    def values(s):
        return torch.where(torch.arange(s[1])[:, None] == 0, torch.rand(s), torch.rand(s).sqrt())

    err = assert_fails(
        C.test_generate_batch, type("V", (ToyModel,), {"generate_batch": _drawn(values)}), "values_depend_on_cell"
    )
    assert "scaled" not in err.hint and "means range from" in err.hint


# ---------------------------------------------------------------- past misleading trials (rounds 45-47)
class FwdBf16(ToyModel):
    def forward(self, features):
        x, W = features.bfloat16(), self.W.bfloat16()
        h = einops.einsum(x, W, "... i f, i d f -> ... i d")
        out = einops.einsum(h, W, "... i d, i d f -> ... i f")
        return F.relu(out.float() + self.b_final)


def _anti(b, p, present):
    n_inst, n_pairs = p.shape
    present = torch.stack(present, -1).flatten(-2)
    return torch.where(present, torch.rand(b, n_inst, 2 * n_pairs), 0.0)


class AntiNotActiveSecond(CorrelatedToyModel):
    def generate_anticorrelated_features(self, b, p):
        active, first = torch.rand(b, *p.shape) < 2 * p, torch.rand(b, *p.shape) < 0.5
        return _anti(b, p, [active & first, ~active & ~first])


class CombImportanceP(CorrelatedToyModel):
    def generate_batch(self, b):
        c, a = self.cfg.n_correlated_pairs, self.cfg.n_anticorrelated_pairs
        p = self.importance  # wrong buffer
        blocks = [
            self.generate_correlated_features(b, p[:, 0 : 2 * c : 2]),
            self.generate_anticorrelated_features(b, p[:, 2 * c : 2 * (c + a) : 2]),
            self.generate_uncorrelated_features(b, p[:, 2 * (c + a) :]),
        ]
        return torch.cat(blocks, -1)


def test_past_forward_bf16():
    err = assert_fails(C.test_forward, FwdBf16, "low_precision")
    assert "bfloat16" in err.hint and "nonlinearity" not in err.hint


def test_past_anti_second_when_inactive():
    # swapped thresholds and the negated second condition give the same joint law: both are listed, as equals
    err = assert_fails(C.test_generate_anticorrelated_features, AntiNotActiveSecond, "anti_thresholds_swapped")
    assert "~active & ~coin" in str(err)


def test_past_combined_importance_as_probability():
    err = assert_fails(C.test_generate_combined_batch, CombImportanceP, "wrong_buffer")
    assert "self.importance" in str(err)


# ---------------------------------------------------------------- pooled value shape: read back, or observed only
def test_power_of_rand_read_back():
    model = type("V", (ToyModel,), {"generate_batch": _drawn(lambda s: torch.rand(s) ** 2)})
    err = assert_fails(C.test_generate_batch, model, "value_distribution")
    assert "read back" in err.hint and "rand ** 2" in err.hint


def test_min_of_draws_not_called_a_power():  # piles up near 0 like rand ** 2, but it is a min of two draws
    model = type("V", (ToyModel,), {"generate_batch": _drawn(lambda s: torch.minimum(torch.rand(s), torch.rand(s)))})
    err = assert_fails(C.test_generate_batch, model, "value_distribution")
    assert "pile up near 0" in err.hint and "power or product" not in err.hint and "rand * rand" not in err.hint
    assert "no power of rand or mean of two draws reproduces them" in err.hint


def test_clamped_normal_middle_names_no_cause():  # crowds the middle, no sum/mean/sigmoid of draws
    model = type(
        "V", (ToyModel,), {"generate_batch": _drawn(lambda s: (0.5 + 0.15 * torch.randn(s)).clamp(0.001, 0.999))}
    )
    err = assert_fails(C.test_generate_batch, model, "value_distribution")
    assert "crowd the middle" in err.hint and "sigmoid" not in err.hint and "sum, mean" not in err.hint


# ---------------------------------------------------------------- zero input: read back, or observed only
class FwdBiasFlipped(ToyModel):  # b_final reversed along the features: read back since round AZ (bias_moved)
    def forward(self, features):
        h = einops.einsum(features, self.W, "... i f, i d f -> ... i d")
        return F.relu(einops.einsum(h, self.W, "... i d, i d f -> ... i f") + self.b_final.flip(-1))


class FwdBiasCubed(ToyModel):  # b_final cubed: none of the read-back candidates
    def forward(self, features):
        h = einops.einsum(features, self.W, "... i f, i d f -> ... i d")
        return F.relu(einops.einsum(h, self.W, "... i d, i d f -> ... i f") + self.b_final**3)


def test_zero_input_flipped_bias_names_no_cause():
    err = assert_fails(C.test_forward, FwdBiasFlipped, "bias_moved")
    assert "flip(-1)" in err.hint and "symmetrised" not in err.hint
    err = assert_fails(C.test_forward, FwdBiasCubed, "bias_term")
    assert "no cause is named" in err.hint and "symmetrised" not in err.hint
