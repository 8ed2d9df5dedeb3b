"""Proof: matryoshka_loss with each prefix's loss divided by its size m is read back as weights 1/m."""

from __future__ import annotations

import einops

import tests.part5b_absorption as checks
from tests.proving import assert_fails


def test_matryoshka_divided_by_m():
    def impl(acts, W, b_dec, h, prefix_sizes):
        tot = 0
        for m in prefix_sizes:
            rec = einops.einsum(acts[..., :m], W[:, :m], "b i s, i s d -> b i d") + b_dec
            tot = tot + (rec - h).pow(2).mean(-1) / m
        return tot

    assert_fails(checks.test_matryoshka_loss, impl, "prefix_weights")
