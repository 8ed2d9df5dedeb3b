"""Proofs for part 8 after the fresh38 measurement: ablation_losses measured as the variance of the change over
the output dims (`variance`) or as 1 - the cosine similarity of the outputs (`cosine_distance`)."""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import tests.part8_parameter_decomposition as p8
from tests.proving import assert_fails


def _ablation(post):
    def ablation_losses(chain, terms, x):
        y, out = chain(x), []
        for k in range(terms.shape[1]):
            Wk = chain.weights[0] - terms[:, k]

            def layer(i, a, Wk=Wk):
                W = Wk if i == 0 else chain.weights[i]
                return einops.einsum(a, W, "batch inst d_in, inst d_out d_in -> batch inst d_out")

            out.append(post(chain(x, layer), y))
        return einops.rearrange(torch.stack(out), "k batch inst -> inst k batch")

    return ablation_losses


def test_variance_of_the_change():
    failure = assert_fails(p8.test_ablation_losses, _ablation(lambda ya, y: (ya - y).var(-1)), "variance")
    assert "variance" in failure.hint


def test_biased_variance_of_the_change():
    assert_fails(p8.test_ablation_losses, _ablation(lambda ya, y: (ya - y).var(-1, unbiased=False)), "variance")


def test_one_minus_cosine():
    post = lambda ya, y: 1 - F.cosine_similarity(ya, y, dim=-1)
    assert_fails(p8.test_ablation_losses, _ablation(post), "cosine_distance")
