"""Proofs for part 8's checkers, seventeenth file: the twentieth fresh held-out measurement. A backward whose
name is misspelt is named as a missing method (not a wrong return value), and a min-max rescale into [0, 1] in
place of the clamp is listed among the causes of moves off the step lattice."""

from __future__ import annotations

import torch

import tests.part8_parameter_decomposition as checks
from tests.proving import assert_fails


class _Backwards(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, alpha=0.01):
        ctx.save_for_backward(x)
        ctx.alpha = alpha
        return x.clamp(0, 1)

    @staticmethod
    def backwards(ctx, g):  # the typo: autograd finds no `backward`
        (x,) = ctx.saved_tensors
        return torch.where(x > 1, ctx.alpha * g, g * (x >= 0)), None


def test_a_misspelt_backward_is_named_as_missing():
    failure = assert_fails(checks.test_upper_leaky_hard_sigmoid, _Backwards, "backward")
    assert "no method named `backward`" in failure.hint and "backwards" in failure.hint


def test_a_min_max_rescale_in_place_of_the_clamp_is_among_the_causes():
    def adv(loss_fn, init, n_steps, step_size):
        src = [s.detach().clone() for s in init]
        for _ in range(n_steps):
            src = [s.requires_grad_(True) for s in src]
            grads = torch.autograd.grad(loss_fn(src), src)
            with torch.no_grad():
                moved = [s + step_size * g.sign() for s, g in zip(src, grads, strict=True)]
                src = [(m - m.min()) / (m.max() - m.min()) for m in moved]
        return [s.detach() for s in src]

    failure = assert_fails(checks.test_adversarial_sources, adv, "off_lattice")
    assert "a projection other than the clamp" in failure.hint
