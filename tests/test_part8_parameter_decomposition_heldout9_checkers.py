"""Proofs for part 8's checkers, eleventh file: mistakes from the fifteenth fresh held-out measurement. Masks above 1
name the law their draws follow (g + 1 - g·r: parentheses dropped); the minimality penalty's inputs have C = 5 and
4 (Σ C = 9, no product of the other counts), so a division by the subcomponent count is named as such, and two
reductions swapped at once, one of them the mean over subcomponents, are named."""

from __future__ import annotations

import einops
import pytest
import torch

import solutions.part8_parameter_decomposition as ref
import tests.part8_parameter_decomposition as checks
from tests.proving import assert_fails, assert_passes


def ein(a, W):
    return einops.einsum(a, W, "batch inst d_in, inst d_out d_in -> batch inst d_out")


# --------------------------------------------------------------------------------------------
# sample_masks: the law of masks above 1
# --------------------------------------------------------------------------------------------
def test_masks_parentheses_dropped_name_the_precedence():
    def sample_masks(cis):
        return [g + 1 - g * torch.rand_like(g) for g in cis], [torch.rand(g.shape[:-1]) for g in cis]

    failure = assert_fails(checks.test_sample_masks, sample_masks, "above_one")
    assert "1 + g(1 - r)" in failure.hint and "parentheses" in failure.hint and "g + r can" not in failure.hint


def test_masks_g_plus_r_named():
    def sample_masks(cis):
        return [g + torch.rand_like(g) for g in cis], [torch.rand(g.shape[:-1]) for g in cis]

    assert "g + r can exceed 1" in assert_fails(checks.test_sample_masks, sample_masks, "above_one").hint


# --------------------------------------------------------------------------------------------
# importance_minimality_loss: the subcomponent count, reductions swapped together
# --------------------------------------------------------------------------------------------
def test_minimality_divided_by_the_subcomponent_count_is_named():
    def impl(cis, p, eps=1e-12):
        total_c = sum(g.shape[-1] for g in cis)
        return sum((g + eps).pow(p).sum(-1) for g in cis).mean(0).sum() / total_c

    failure = assert_fails(checks.test_importance_minimality_loss, impl, "scale")
    assert "subcomponents" in failure.hint and "instances" not in failure.hint and "1/9" in failure.hint


@pytest.mark.parametrize(
    ("impl", "words"),
    [
        (lambda cis, p, eps=1e-12: sum((g + eps).pow(p).mean(-1) for g in cis).sum(0).sum(), ["the batch"]),
        (lambda cis, p, eps=1e-12: (sum((g + eps).pow(p).mean(-1) for g in cis) / 2).mean(0).sum(), ["matrices"]),
        (lambda cis, p, eps=1e-12: sum((g + eps).pow(p).mean(-1) for g in cis).sum(0).mean(), ["batch", "inst"]),
    ],
)
def test_minimality_reductions_swapped_together_are_named(impl, words):
    failure = assert_fails(checks.test_importance_minimality_loss, impl, "reductions")
    assert "a mean over subcomponents" in failure.hint and all(w in failure.hint for w in words)


def test_minimality_reference_still_passes():
    assert_passes(checks.test_importance_minimality_loss, ref.importance_minimality_loss)
