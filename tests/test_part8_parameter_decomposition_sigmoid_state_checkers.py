"""Proofs for the leaky hard sigmoids after the fresh30 measurement: alpha stored outside ctx (a global here, a class
attribute alike: the last forward's alpha leaks into an earlier call's backward), x.relu() saved for backward
(negatives read as 0), and the leak applied for x < alpha (a band [0, alpha) with the wrong slope, not a `<` / `<=`
slip at x = 0)."""

from __future__ import annotations

import torch

import tests.part8_parameter_decomposition as checks
from tests.proving import assert_fails

SHARED: dict[str, float] = {}  # alpha kept outside ctx, as a class attribute or a global would be


class LowerClassAttr(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, alpha=0.01):
        ctx.save_for_backward(x)
        SHARED["alpha"] = alpha  # outside ctx: the last call's alpha
        return x.clamp(0, 1)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * torch.where(x < 0, SHARED["alpha"], (x <= 1).to(x.dtype)), None


class UpperClassAttr(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, alpha=0.01):
        ctx.save_for_backward(x)
        SHARED["alpha"] = alpha  # outside ctx: the last call's alpha
        return x.clamp(0, 1)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * torch.where(x > 1, SHARED["alpha"], (x >= 0).to(x.dtype)), None


class UpperSaveRelu(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, alpha=0.01):
        ctx.save_for_backward(x.relu())
        ctx.alpha = alpha
        return x.clamp(0, 1)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * torch.where(x > 1, ctx.alpha, (x >= 0).to(x.dtype)), None


class LowerAlphaThreshold(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, alpha=0.01):
        ctx.save_for_backward(x)
        ctx.alpha = alpha
        return x.clamp(0, 1)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * torch.where(x < ctx.alpha, ctx.alpha, (x <= 1).to(x.dtype)), None


def test_alpha_on_class():
    for check, impl in (
        (checks.test_lower_leaky_hard_sigmoid, LowerClassAttr),
        (checks.test_upper_leaky_hard_sigmoid, UpperClassAttr),
    ):
        failure = assert_fails(check, impl, "alpha_outside_ctx")
        assert "alpha stored outside ctx (on the class or a global): save it on ctx" in failure.hint


def test_saved_relu():
    failure = assert_fails(checks.test_upper_leaky_hard_sigmoid, UpperSaveRelu, "saved_clipped")
    assert "the backward sees x clipped" in failure.hint and "save x itself for backward" in failure.hint
    assert "at 0" in failure.message


def test_alpha_as_threshold():
    failure = assert_fails(checks.test_lower_leaky_hard_sigmoid, LowerAlphaThreshold, "band_slope")
    assert "[0, t) with t between 0.0275 and 0.03" in failure.message and "alpha (0.03)" in failure.message
    assert "the break is at t instead of 0" in failure.hint
    assert "t = alpha: the leak's slope used as the threshold?" in failure.hint
    assert "`<=`" not in failure.hint
