"""Proofs for part 7 (round AQ): a signed_uniform sign taken from the presence draw, compute_target's presence tested
over the instances (the error names n_instances / n_features), a ReLU on the logits before log_softmax, and a
zero-column guard filled with torch.zeros_like(W) (W's shape where the norm's belongs)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import solutions.part7_open_problems as sol
import tests.part7_open_problems as checks
from tests.proving import assert_fails, assert_passes
from utils.part7_open_problems import NO_LABEL


def _signed(sign_of):
    def generate_features(p, batch_size, values="uniform"):
        if values != "signed_uniform":
            return sol.generate_features(p, batch_size, values)
        u = torch.rand((batch_size, *p.shape))
        sign = torch.where(sign_of(u, p), -1.0, 1.0)
        return torch.where(u < p, torch.rand(u.shape) * sign, 0.0)

    return generate_features


def test_sign_from_the_presence_draw_is_observed():
    failure = assert_fails(checks.test_generate_features, _signed(lambda u, p: u < 0.5), code="value_mean")
    assert "u < p reused as u < 0.5" in failure.hint and "single sign" in failure.hint


def test_sign_from_the_presence_draw_below_p_half_passes():
    """u | present ~ U[0, p): u < p / 2 is a fair sign independent of the magnitude: a correct variant."""
    assert_passes(checks.test_generate_features, _signed(lambda u, p: u < p / 2))


def test_presence_over_the_instances_names_the_axes():
    def compute_target(features, target):
        if target != "argmax":
            return sol.compute_target(features, target)
        present = (features != 0).any(dim=-2)
        return torch.where(present, features.argmax(-1), NO_LABEL)

    failure = assert_fails(checks.test_compute_target, compute_target, code="exception")
    assert "is n_features" in failure.hint and "is n_instances" in failure.hint


def test_relu_on_the_logits_is_named():
    def cross_entropy_loss(logits, labels, importance):
        return sol.cross_entropy_loss(F.relu(logits), labels, importance)

    assert_fails(checks.test_cross_entropy_loss, cross_entropy_loss, code="relu_logits")


def test_zero_guard_shaped_like_W_is_named():
    def basis_alignment(W):
        n = W.norm(dim=1)
        return torch.where(n > 0, W.abs().amax(1) / n.clamp(min=1e-12), torch.zeros_like(W))

    failure = assert_fails(checks.test_basis_alignment, basis_alignment, code="like_wrong_tensor")
    assert "zeros_like(W)" in failure.message and "zeros_like of the norm" in failure.hint


def test_zero_guard_shaped_like_the_norm_passes():
    def basis_alignment(W):
        n = W.norm(dim=1)
        return torch.where(n > 0, W.abs().amax(1) / n.clamp(min=1e-12), torch.zeros_like(n))

    assert_passes(checks.test_basis_alignment, basis_alignment)
