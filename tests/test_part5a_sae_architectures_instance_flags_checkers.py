"""Proofs: a θ-gradient that depends on x's requires_grad flag (needs_input_grad swapped) and a median over the
latents where dead_latent_fraction's mean belongs are caught and named."""

from __future__ import annotations

import torch

import solutions.part5a_sae_architectures as A
import tests.part5a_sae_architectures as C
from tests.proving import assert_fails


def _swapped(solution):
    class Swapped(solution):
        @staticmethod
        def backward(ctx, grad_output):
            gx, gth = solution.backward(ctx, grad_output)[:2]
            flags = ctx.needs_input_grad
            return (gx if flags[0] else None), (gth if flags[0] else None), None

    return Swapped


def test_heaviside_needs_input_grad_swapped_is_named():
    assert_fails(C.test_heaviside, _swapped(A.Heaviside), "needs_input_grad")


def test_jumprelu_needs_input_grad_swapped_is_named():
    assert_fails(C.test_jumprelu, _swapped(A.JumpReLU), "needs_input_grad")


def test_dead_latent_median_over_latents_is_named():
    median = lambda acts: (acts == 0).all(0).float().median(-1).values
    assert_fails(C.test_dead_latent_fraction, median, "median_over_latents")


def test_dead_latent_min_over_latents_is_named():
    assert_fails(C.test_dead_latent_fraction, lambda acts: (acts == 0).all(0).float().amin(-1), "min_over_latents")


def test_dead_latent_pooled_instances_still_named():
    pooled = lambda acts: (acts == 0).all(0).all(0).float().mean().expand(acts.shape[1])
    assert_fails(C.test_dead_latent_fraction, pooled, "pooled_instances")


def test_correct_step_functions_and_dead_fraction_pass():
    C.test_heaviside(A.Heaviside, torch.device("cpu"))
    C.test_jumprelu(A.JumpReLU, torch.device("cpu"))
    C.test_dead_latent_fraction(A.dead_latent_fraction, torch.device("cpu"))
