"""Proofs for part 8's adversarial_sources on sources at exactly 0 whose gradient pushes them up: a step of
step_size · sign(grad · r) (0 wherever r = 0, so a source clamped to 0 never moves again) is named."""

from __future__ import annotations

import torch

import tests.part8_parameter_decomposition as checks
from tests.proving import assert_fails, assert_passes


def _ascent(direction):
    def adversarial_sources(loss_fn, init, n_steps, step_size):
        src = [s.detach().clone() for s in init]
        for _ in range(n_steps):
            src = [s.requires_grad_(True) for s in src]
            gs = torch.autograd.grad(loss_fn(src), src)
            with torch.no_grad():
                src = [(s + step_size * direction(g, s)).clamp(0, 1) for s, g in zip(src, gs, strict=True)]
        return [s.detach() for s in src]

    return adversarial_sources


def test_sign_of_gradient_times_source_is_named():
    failure = assert_fails(
        checks.test_adversarial_sources, _ascent(lambda g, s: (g * s).sign()), code="sign_times_source"
    )
    assert "sign(grad)" in failure.hint


def test_sign_of_the_gradient_passes():
    assert_passes(checks.test_adversarial_sources, _ascent(lambda g, s: g.sign()))
