"""Proof: matryoshka prefixes rescaled by d_sae / m (dropout style) are named."""

from __future__ import annotations

import einops

import tests.part5b_absorption as checks5b
from tests.proving import assert_fails


def test_matryoshka_rescaled_prefixes_named():
    def f(acts, W, b_dec, h, prefix_sizes):
        d_sae, total = acts.shape[-1], 0
        for m in prefix_sizes:
            rec = einops.einsum(acts[..., :m] * (d_sae / m), W[:, :m], "b i m, i m d -> b i d") + b_dec
            total = total + (rec - h).pow(2).mean(-1)
        return total

    assert_fails(checks5b.test_matryoshka_loss, f, "prefix_rescaled")
