"""Proofs for part 7 after the fresh29 measurement: generate_features seeded inside (the same batch on every call) is
caught (not_fresh); a size mismatch from F.one_hot(labels) without num_classes names one_hot's width; basis_alignment
read back: an eps added to the norm (denominator_eps), the range or another stand-in in the numerator
(numerator_reading), and an output that is 1 everywhere (alignment_constant, never an "affine rescaling")."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import tests.part7_open_problems as checks
from tests.proving import assert_fails, assert_passes
from utils.part7_open_problems import NO_LABEL


def _features(p, n, values="uniform", seed=False):
    if seed:
        torch.manual_seed(0)
    shape = (n, *p.shape)
    present = torch.rand(shape, device=p.device) < p
    draws = {
        "uniform": lambda: torch.rand(shape, device=p.device),
        "uniform_half": lambda: 0.5 + 0.5 * torch.rand(shape, device=p.device),
        "signed_uniform": lambda: 2 * torch.rand(shape, device=p.device) - 1,
        "discrete": lambda: torch.randint(1, 4, shape, device=p.device).float(),
        "constant": lambda: torch.ones(shape, device=p.device),
        "binary": lambda: torch.ones(shape, device=p.device),
    }
    return torch.where(present, draws[values](), 0.0)


def test_generate_features_seeded_inside_is_caught():
    failure = assert_fails(checks.test_generate_features, lambda *a: _features(*a, seed=True), "not_fresh")
    assert "don't seed inside" in failure.hint


def test_generate_features_seeding_does_not_leak_out_of_the_checker():
    torch.manual_seed(123)
    want = torch.rand(3)
    torch.manual_seed(123)
    assert_fails(checks.test_generate_features, lambda *a: _features(*a, seed=True), "not_fresh")
    assert torch.equal(torch.rand(3), want)


def test_generate_features_fresh_draws_pass():
    assert_passes(checks.test_generate_features, _features)


def test_cross_entropy_one_hot_without_num_classes_is_named():
    def one_hot_loss(logits, labels, importance):
        valid, idx = labels != NO_LABEL, labels.clamp(min=0)
        nll = -(logits.log_softmax(-1) * F.one_hot(idx)).sum(-1)
        w = importance.expand_as(logits).gather(-1, idx[..., None])[..., 0]
        return (torch.where(valid, w * nll, 0.0).sum(0) / valid.sum(0).clamp(min=1)).sum()

    failure = assert_fails(checks.test_cross_entropy_loss, one_hot_loss, "exception")
    assert "max(label)+1 columns" in failure.hint and "num_classes=logits.shape[-1]" in failure.hint


def _where(W, value):
    return torch.where(W.norm(dim=1) > 0, value, 0.0)


def test_alignment_eps_in_the_denominator_is_named():
    failure = assert_fails(
        checks.test_basis_alignment, lambda W: W.abs().amax(1) / (W.norm(dim=1) + 1e-3), "denominator_eps"
    )
    assert "an eps of 0.001 added to the norm" in failure.message


def test_alignment_range_numerator_is_named():
    def range_numerator(W):
        return _where(W, (W.amax(1) - W.amin(1)) / W.norm(dim=1).clamp(min=1e-12))

    failure = assert_fails(checks.test_basis_alignment, range_numerator, "numerator_reading")
    assert "max W − min W" in failure.message


def test_alignment_squared_numerator_is_named():
    def squared(W):
        return _where(W, W.pow(2).amax(1) / W.norm(dim=1).clamp(min=1e-12))

    failure = assert_fails(checks.test_basis_alignment, squared, "numerator_reading")
    assert "max W_ki²" in failure.message


def test_alignment_inf_norm_over_itself_is_named_not_affine():
    def inf_over_inf(W):
        top = torch.linalg.vector_norm(W, ord=float("inf"), dim=1)
        return _where(W, top / top.clamp(min=1e-12))

    failure = assert_fails(checks.test_basis_alignment, inf_over_inf, "alignment_constant")
    assert "is 1 for every non-zero feature" in failure.message and "L2 norm" in failure.hint
