"""Proofs for part 1 after held-out round AV (second pass): a loss whose error is centred over an axis (torch.var over
the batch) is named error_centred; presence against p.cumsum(-1) is named presence_cumulative_p; an anticorrelated
pair whose two masks are one tensor (an in-place logical_not_) is named masks_identical; a pair's choice that follows
the example index (b % 2) is named choice_by_example_index. The round's correct variants still pass."""

from __future__ import annotations

import torch

import tests.part1_superposition as C
from solutions.part1_superposition import CorrelatedToyModel, ToyModel
from tests.proving import assert_fails, assert_passes


class LossVar(ToyModel):
    def calculate_loss(self, out, batch):
        return (self.importance * torch.var(batch - out, dim=0)).mean(-1).sum()


class LossVarBiased(ToyModel):
    def calculate_loss(self, out, batch):
        return (self.importance * torch.var(batch - out, dim=0, correction=0)).mean(-1).sum()


class LossNormOK(ToyModel):
    def calculate_loss(self, out, batch):
        e = (batch - out) * self.importance.sqrt()
        B, _, n = batch.shape
        return torch.linalg.vector_norm(e, dim=(0, 2)).pow(2).sum() / (B * n)


def test_loss_centred_error_named():
    assert_fails(C.test_calculate_loss, LossVar, "error_centred")
    assert_fails(C.test_calculate_loss, LossVarBiased, "error_centred")
    assert_passes(C.test_calculate_loss, LossNormOK)


class UncPCumsum(CorrelatedToyModel):
    def generate_uncorrelated_features(self, b, p):
        u = torch.rand(b, *p.shape)
        return torch.where(u < p.cumsum(-1), torch.rand(b, *p.shape), 0.0)


class UncPCumprod(CorrelatedToyModel):
    def generate_uncorrelated_features(self, b, p):
        u = torch.rand(b, *p.shape)
        return torch.where(u < p.cumprod(-1), torch.rand(b, *p.shape), 0.0)


def test_uncorrelated_cumulative_p_named():
    assert_fails(C.test_generate_uncorrelated_features, UncPCumsum, "presence_cumulative_p")
    assert_fails(C.test_generate_uncorrelated_features, UncPCumprod, "presence_cumulative_p")


def _anti(b, p, present):
    n_inst, n_pairs = p.shape
    present = torch.stack(present, -1).flatten(-2)
    return torch.where(present, torch.rand(b, n_inst, 2 * n_pairs), 0.0)


class AntiInplaceNot(CorrelatedToyModel):
    def generate_anticorrelated_features(self, b, p):
        active, first = torch.rand(b, *p.shape) < 2 * p, torch.rand(b, *p.shape) < 0.5
        second = active & first.logical_not_()  # in-place: first is now negated too
        return _anti(b, p, [active & first, second])


class AntiParity(CorrelatedToyModel):
    def generate_anticorrelated_features(self, b, p):
        active = torch.rand(b, *p.shape) < 2 * p
        first = (torch.arange(b) % 2 == 0)[:, None, None].expand_as(active)  # alternate examples
        return _anti(b, p, [active & first, active & ~first])


class AntiPeriod3(CorrelatedToyModel):
    def generate_anticorrelated_features(self, b, p):
        active = torch.rand(b, *p.shape) < 2 * p
        first = (torch.arange(b) % 3 == 0)[:, None, None].expand_as(active)
        return _anti(b, p, [active & first, active & ~first])


class AntiRandintOK(CorrelatedToyModel):
    def generate_anticorrelated_features(self, b, p):
        active = torch.rand(b, *p.shape) < 2 * p
        which = torch.nn.functional.one_hot(torch.randint(0, 2, (b, *p.shape)), 2).bool()
        return _anti(b, p, [active & which[..., 0], active & which[..., 1]])


def test_anticorrelated_mask_and_choice_named():
    assert_fails(C.test_generate_anticorrelated_features, AntiInplaceNot, "masks_identical")
    assert_fails(C.test_generate_anticorrelated_features, AntiParity, "choice_by_example_index")
    assert_fails(C.test_generate_anticorrelated_features, AntiPeriod3, "choice_by_example_index")
    assert_passes(C.test_generate_anticorrelated_features, AntiRandintOK)
