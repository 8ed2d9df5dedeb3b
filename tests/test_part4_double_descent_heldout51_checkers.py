"""Proofs for section 4 (held-out round AX): a presence rate of 1 - p names both causes the rate cannot tell apart
(an inverted comparison and F.dropout's p, the drop probability); examples shorter than 1 among ones exactly unit are
read as a floor on the norm, not an eps added to it; a cosine part fitted as 0.5 + 1 · 0.5(1 + cos) is named as the
parenthesis slip 1 + cos(...) / 2 (and 1 + cos(...) as the missing 0.5); compute_dimensionality's tiny-vector probe
also runs at norm 1e-7, so a clamp_min(1e-6) on the norm is read back, and an eps added to the norm is solved from
two sizes. The round's correct variants pass."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

import tests.part4_double_descent as checks
from solutions.part4_double_descent import DoubleDescentModel
from tests.proving import assert_fails, assert_passes


def gd_dropout_p(n_examples, n_inst, n_features, feature_probability, device=None):
    x = F.dropout(torch.rand(n_examples, n_inst, n_features, device=device), feature_probability)
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def gd_clamp_1e3(n_examples, n_inst, n_features, feature_probability, device=None):
    shape = (n_examples, n_inst, n_features)
    x = torch.where(torch.rand(shape, device=device) < feature_probability, torch.rand(shape, device=device), 0.0)
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-3)


def lr_missing_parens_div(step, steps, warmup_steps):
    if step < warmup_steps:
        return step / warmup_steps
    return 1 + math.cos(math.pi * (step - warmup_steps) / (steps - warmup_steps)) / 2


def cd_clamp_1e6(vectors):
    n2 = vectors.pow(2).sum(-1)
    unit = vectors / vectors.norm(dim=-1, keepdim=True).clamp_min(1e-6)
    return n2 / (unit @ vectors.mT).pow(2).sum(-1).clamp_min(1e-30)


def gd_reuse_u(n_examples, n_inst, n_features, feature_probability, device=None):
    u = torch.rand(n_examples, n_inst, n_features, device=device)
    x = u * (u < feature_probability)
    return F.normalize(x, dim=-1)


def lr_half_plus_half(step, steps, warmup_steps):
    if warmup_steps > 0 and step < warmup_steps:
        return step * (1.0 / warmup_steps)
    t = (step - warmup_steps) / (steps - warmup_steps)
    return 0.5 + 0.5 * math.cos(t * math.pi)


class GBNamedBuffers(DoubleDescentModel):
    def generate_batch(self, batch_size=None):
        return dict(self.named_buffers())["train_data"]


def cd_bmm_masked(vectors):
    n2 = vectors.square().sum(-1)
    den = torch.bmm(F.normalize(vectors, dim=-1), vectors.transpose(1, 2)).square().sum(-1)
    return (n2 / den).masked_fill(n2 == 0, 0.0)


def test_dropout_rate_names_dropout():
    failure = assert_fails(checks.test_generate_dataset, gd_dropout_p, "presence_inverted")
    assert "F.dropout" in failure.hint and "rand > p" in failure.hint


def test_norm_floor_is_not_called_an_eps():
    failure = assert_fails(checks.test_generate_dataset, gd_clamp_1e3, "norm_floor")
    assert "clamp_min(c)" in failure.hint


def test_missing_parentheses_in_cosine_is_named():
    failure = assert_fails(checks.test_warmup_cosine_lr, lr_missing_parens_div, "cosine_parentheses")
    assert "1 + cos(π progress) / 2" in str(failure)


def test_norm_floor_below_1e4_is_caught():
    failure = assert_fails(checks.test_compute_dimensionality, cd_clamp_1e6, "norm_floor")
    assert "1e-06" in failure.hint


def test_round_correct_variants_pass():
    assert_passes(checks.test_generate_dataset, gd_reuse_u)
    assert_passes(checks.test_warmup_cosine_lr, lr_half_plus_half)
    assert_passes(checks.test_generate_batch, GBNamedBuffers)
    assert_passes(checks.test_compute_dimensionality, cd_bmm_masked)


def lr_no_half(step, steps, warmup_steps):
    if step < warmup_steps:
        return step / warmup_steps
    return 1 + math.cos(math.pi * (step - warmup_steps) / (steps - warmup_steps))


def test_missing_half_in_cosine_is_named():
    failure = assert_fails(checks.test_warmup_cosine_lr, lr_no_half, "cosine_half_missing")
    assert "0.5 is missing" in failure.hint


def cd_additive_eps(vectors):
    n2 = vectors.pow(2).sum(-1)
    unit = vectors / (vectors.norm(dim=-1, keepdim=True) + 1e-6)
    return n2 / (unit @ vectors.mT).pow(2).sum(-1).clamp_min(1e-30)


def test_eps_added_to_norm_is_read_back():
    failure = assert_fails(checks.test_compute_dimensionality, cd_additive_eps, "small_vector")
    assert "e = 1e-06 added to the norm" in failure.hint
