"""Held-out round BA (fresh54), part 5a: what the round's misleading and unnamed mistakes are now named as, and its
correct variants.

* Heaviside's θ-gradient multiplied by the step 1[x > θ] (or 1[x <= θ]): the half-window hint offered only "an edge
  at u = 0" as the cause; it now names the gate too (window_half).
"""

from __future__ import annotations

import einops
import pytest
import torch

import solutions.part5a_sae_architectures as A
import tests.part5a_sae_architectures as C
from tests.proving import assert_fails, assert_passes


def _enc(x, W):
    return einops.einsum(x, W, "b i d, i d s -> b i s")


def _dec(a, W):
    return einops.einsum(a, W, "b i s, i s d -> b i d")


def _heaviside(mode):
    class H(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, threshold, bandwidth):
            ctx.save_for_backward(x, threshold)
            ctx.bandwidth = bandwidth
            if mode == "ok_sign":
                return torch.sign(x - threshold).clamp(min=0)
            return (x > threshold).to(x.dtype)

        @staticmethod
        def backward(ctx, g):
            x, th = ctx.saved_tensors
            bw = ctx.bandwidth
            k = A.rectangle((x - th) / bw)
            gth = -k / bw * g
            if mode == "fired_only":
                gth = gth * (x > th).to(x.dtype)
            elif mode == "unfired_only":
                gth = gth * (x <= th).to(x.dtype)
            return torch.zeros_like(x), gth, None

    return H


@pytest.mark.parametrize(("mode", "gate"), [("fired_only", "1[x > θ]"), ("unfired_only", "1[x <= θ]")])
def test_heaviside_window_gated(mode, gate):
    failure = assert_fails(C.test_heaviside, _heaviside(mode), "window_half")
    assert gate in failure.hint


def test_heaviside_correct_variants():
    assert_passes(C.test_heaviside, _heaviside("ok_sign"))
