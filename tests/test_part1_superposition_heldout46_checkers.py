"""Proofs for part 1 after held-out round AU: presence decided by a count (exactly round(p · n) examples per column)
is caught by the presence counts' scatter (presence_count_fixed); a pair member's value taken from the other member in
the previous example is caught by the lagged-neighbour statistic (values_from_previous_example); the anticorrelated
1/2 - p reading lists the second member's negated condition (~active & ~coin) beside the swapped thresholds. The
round's correct variants pass."""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import tests.part1_superposition as C
from solutions.part1_superposition import CorrelatedToyModel, ToyModel
from tests.proving import assert_fails, assert_passes

E = einops.einsum


def _s(m, b):
    return (b, m.cfg.n_inst, m.cfg.n_features)


def _anti(b, p, present):
    n_inst, n_pairs = p.shape
    present = torch.stack(present, -1).flatten(-2)
    return torch.where(present, torch.rand(b, n_inst, 2 * n_pairs), 0.0)


# ---------------------------------------------------------------- misleading: second member on when inactive
class AntiNotActiveSecond(CorrelatedToyModel):
    def generate_anticorrelated_features(self, b, p):
        active, first = torch.rand(b, *p.shape) < 2 * p, torch.rand(b, *p.shape) < 0.5
        return _anti(b, p, [active & first, ~active & ~first])


class AntiMultinomialOK(CorrelatedToyModel):
    def generate_anticorrelated_features(self, b, p):
        n_inst, n_pairs = p.shape
        probs = torch.stack([p, p, 1 - 2 * p], -1).clamp(min=0).reshape(-1, 3)
        k = torch.multinomial(probs, b, replacement=True).T.reshape(b, n_inst, n_pairs)
        return _anti(b, p, [k == 0, k == 1])


def test_anti_second_when_inactive_listed():
    err = assert_fails(C.test_generate_anticorrelated_features, AntiNotActiveSecond, "anti_thresholds_swapped")
    assert "~active & ~coin" in str(err) and "INACTIVE" in str(err)


def test_anti_correct_variant():
    assert_passes(C.test_generate_anticorrelated_features, AntiMultinomialOK)


# ---------------------------------------------------------------- not caught: presence by count
class GbArgsortBatch(ToyModel):
    def generate_batch(self, b):
        s = _s(self, b)
        ranks = torch.rand(s).argsort(0).argsort(0)  # a random permutation of 0..b-1 per column
        present = ranks < (self.feature_probability * b).round()
        return torch.where(present, torch.rand(s), 0.0)


class GbTopkBatch(ToyModel):
    def generate_batch(self, b):
        s = _s(self, b)
        k = (self.feature_probability * b).floor()
        present = torch.rand(s).argsort(0, descending=True).argsort(0) < k
        return present * torch.rand(s)


class GbUpperTailOK(ToyModel):
    def generate_batch(self, b):
        s = _s(self, b)
        present = torch.rand(s) > 1 - self.feature_probability
        return present.float() * (1 - torch.rand(s))


def test_exact_count_per_column_caught():
    err = assert_fails(C.test_generate_batch, GbArgsortBatch, "presence_count_fixed")
    assert "rank or a count" in str(err)
    # floor(p · 1) = 0: generate_batch(1) is all zeros, which the small-batch check sees first
    err = assert_fails(C.test_generate_batch, GbTopkBatch, "example_never_drawn")
    assert "count over the batch" in str(err)


def test_generate_batch_correct_variant():
    assert_passes(C.test_generate_batch, GbUpperTailOK)


# ---------------------------------------------------------------- not caught: value from the previous example
class CorrSecondFromPrevExample(CorrelatedToyModel):
    def generate_correlated_features(self, b, p):
        n_inst, n_pairs = p.shape
        present = (torch.rand(b, n_inst, n_pairs) < p).repeat_interleave(2, -1)
        v = torch.rand(b, n_inst, 2 * n_pairs)
        v[..., 1::2] = v[..., 0::2].roll(1, 0)
        return torch.where(present, v, 0.0)


class CorrFirstFromNextShift(CorrelatedToyModel):
    def generate_correlated_features(self, b, p):
        n_inst, n_pairs = p.shape
        present = (torch.rand(b, n_inst, n_pairs) < p).repeat_interleave(2, -1)
        v = torch.rand(b, n_inst, 2 * n_pairs)
        v[1:, :, 0::2] = v[:-1, :, 1::2]
        return torch.where(present, v, 0.0)


class CorrRiNoDimOK(CorrelatedToyModel):
    def generate_correlated_features(self, b, p):
        n_inst, n_pairs = p.shape
        present = torch.repeat_interleave(torch.rand(b, n_inst, n_pairs) < p, 2).view(b, n_inst, 2 * n_pairs)
        return torch.where(present, torch.rand(b, n_inst, 2 * n_pairs), 0.0)


def test_value_from_previous_example_caught():
    err = assert_fails(C.test_generate_correlated_features, CorrSecondFromPrevExample, "values_from_previous_example")
    assert "previous example" in str(err)
    assert_fails(C.test_generate_correlated_features, CorrFirstFromNextShift, "values_from_previous_example")


def test_correlated_correct_variant():
    assert_passes(C.test_generate_correlated_features, CorrRiNoDimOK)


class FwdInplaceOK(ToyModel):
    def forward(self, x):
        out = torch.einsum("...if,idf,idg->...ig", x, self.W, self.W)
        return out.add_(self.b_final).relu_()


class LossSumInstThenMeanOK(ToyModel):
    def calculate_loss(self, out, batch):
        return (self.importance * (batch - out) ** 2).sum(1).mean()


def test_forward_and_loss_correct_variants():
    assert_passes(C.test_forward, FwdInplaceOK)
    assert_passes(C.test_calculate_loss, LossSumInstThenMeanOK)


# ---------------------------------------------------------------- unnamed before: now named
class FwdNormHidden(ToyModel):
    def forward(self, x):
        h = F.normalize(E(x, self.W, "... i f, i d f -> ... i d"), dim=-1)
        return F.relu(E(h, self.W, "... i d, i d f -> ... i f") + self.b_final)


class FwdRollUp(ToyModel):
    def forward(self, x):
        h = E(x, self.W, "... i f, i d f -> ... i d")
        return F.relu(E(h, self.W.roll(1, 0), "... i d, i d f -> ... i f") + self.b_final)


class FwdFlipDown(ToyModel):
    def forward(self, x):
        h = E(x, self.W.flip(0), "... i f, i d f -> ... i d")
        return F.relu(E(h, self.W, "... i d, i d f -> ... i f") + self.b_final)


def test_forward_hidden_normalised_and_other_instance_named():
    err = assert_fails(C.test_forward, FwdNormHidden, "hidden_normalised")
    assert "F.normalize(h, dim=-1)" in str(err)
    err = assert_fails(C.test_forward, FwdRollUp, "weights_other_instance")
    assert "W.roll(1, 0)" in str(err) and "second product" in str(err)
    assert_fails(C.test_forward, FwdFlipDown, "weights_other_instance")


class LossOneSided(ToyModel):
    def calculate_loss(self, out, batch):
        return (self.importance * F.relu(batch - out) ** 2).mean((0, 2)).sum()


class LossOverOnly(ToyModel):
    def calculate_loss(self, out, batch):
        return (self.importance * (out - batch).clamp(min=0) ** 2).mean((0, 2)).sum()


def test_loss_one_sided_named():
    err = assert_fails(C.test_calculate_loss, LossOneSided, "one_sided_error")
    assert "under-prediction" in str(err)
    assert_fails(C.test_calculate_loss, LossOverOnly, "one_sided_error")


class GbPAmax0(ToyModel):
    def generate_batch(self, b):
        s = _s(self, b)
        return torch.where(torch.rand(s) < self.feature_probability.amax(0), torch.rand(s), 0.0)


class GbPMinFeatures(ToyModel):
    def generate_batch(self, b):
        s = _s(self, b)
        return torch.where(torch.rand(s) < self.feature_probability.min(-1, keepdim=True).values, torch.rand(s), 0.0)


def test_p_reduced_over_an_axis_named():
    err = assert_fails(C.test_generate_batch, GbPAmax0, "instance_reduced_probability")
    assert "p.amax(-2)" in str(err)
    assert_fails(C.test_generate_batch, GbPMinFeatures, "presence_instance_smallest")  # named before
