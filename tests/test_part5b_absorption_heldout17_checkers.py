"""Proofs for part 5b's diagnoses added after the fresh37 held-out measurement: matryoshka_loss with each prefix's
squared error divided by the size of h (a normalised MSE: per example, the batch's mean, h's variance) named."""

from __future__ import annotations

import pytest
import torch

import tests.part5b_absorption as checks
from tests.proving import assert_fails


def _normalised(denom):
    def matryoshka_loss(acts, W, b_dec, h, prefix_sizes):
        total = torch.zeros(h.shape[:2], dtype=h.dtype)
        for m in prefix_sizes:
            rec = torch.einsum("bim,imd->bid", acts[..., :m], W[:, :m]) + b_dec
            total = total + (rec - h).pow(2).mean(-1) / denom(h)
        return total

    return matryoshka_loss


@pytest.mark.parametrize(
    "denom, phrase",
    [
        (lambda h: h.pow(2).mean(-1), "that example's mean_d h²"),
        (lambda h: h.pow(2).sum(-1), "that example's ‖h‖²"),
        (lambda h: h.pow(2).mean(-1).mean(0), "the batch's mean (per instance) mean_d h²"),
        (lambda h: h.var(0, unbiased=False).mean(-1), "variance over the batch"),
    ],
)
def test_matryoshka_loss_normalised_mse_is_named(denom, phrase):
    err = assert_fails(checks.test_matryoshka_loss, _normalised(denom), "normalised_mse")
    assert phrase in err.hint and "normalised MSE" in err.hint
