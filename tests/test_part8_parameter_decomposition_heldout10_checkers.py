"""Proofs for part 8's checkers, twelfth file: mistakes from the sixteenth fresh held-out measurement. A faithfulness
loss that divides each matrix's squared error by a number of its own (its d_out: a mean over one axis) is measured
matrix by matrix and named, never described as a reduction before the square; a clash of the matrices' C in the
minimality penalty is read from the failing line (a reduction over the instances that keeps C, a local shaped
[batch C]) before the usual causes are listed."""

from __future__ import annotations

import pytest
import torch

import tests.part8_parameter_decomposition as checks
from tests.checking import CheckFailed
from tests.proving import assert_fails


# --------------------------------------------------------------------------------------------
# faithfulness_loss: a divisor per matrix
# --------------------------------------------------------------------------------------------
def test_faithfulness_mean_over_d_out_per_matrix_is_named():
    def faithfulness_loss(weights, U, V):
        return sum((W - u @ v).pow(2).sum(-1).mean(-1) for W, u, v in zip(weights, U, V, strict=True)).sum()

    failure = assert_fails(checks.test_faithfulness_loss, faithfulness_loss, "per_matrix_divisor")
    assert "its own d_out" in failure.hint and "2, 6, 3, 5" in failure.hint and "N = 49" in failure.hint
    assert "before the square" not in failure.hint


def test_faithfulness_mean_over_d_in_and_instances_is_named():
    def faithfulness_loss(weights, U, V):
        return sum((W - u @ v).pow(2).sum(-2).mean(-1).mean() for W, u, v in zip(weights, U, V, strict=True))

    failure = assert_fails(checks.test_faithfulness_loss, faithfulness_loss, "per_matrix_divisor")
    assert "d_in (W_l.shape[-1]) × the 3 instances" in failure.hint


def test_faithfulness_absolute_error_is_no_divisor():
    # additive over the matrices, but doubling an error doubles the loss: no weighting of the squares, none fitted
    def faithfulness_loss(weights, U, V):
        return sum((W - u @ v).abs().sum((-2, -1)) for W, u, v in zip(weights, U, V, strict=True)).sum() / 49

    with pytest.raises(CheckFailed) as info:
        checks.test_faithfulness_loss(faithfulness_loss, device="cpu")
    assert info.value.code != "per_matrix_divisor" and "own" not in info.value.hint


# --------------------------------------------------------------------------------------------
# importance_minimality_loss: what carried C into the combination of the matrices
# --------------------------------------------------------------------------------------------
def test_minimality_sum_over_the_instances_is_read_from_the_line():
    def impl(cis, p, eps=1e-12):
        per = sum((g + eps).pow(p).sum(1) for g in cis)  # [batch C]
        return per.mean(0).sum()

    failure = assert_fails(checks.test_importance_minimality_loss, impl, "matrices_combined")
    assert "`.sum(1)` reduces the inst axis" in failure.hint and "Σ_l Σ_c (g_lc + eps)^p" in failure.hint
    assert "stacked" not in failure.hint


def test_minimality_local_with_c_kept_is_named():
    def impl(cis, p, eps=1e-12):
        first = torch.sum((cis[0] + eps).pow(p), dim=0)
        second = torch.sum((cis[1] + eps).pow(p), dim=0)
        return (first + second).sum(-1).sum()

    failure = assert_fails(checks.test_importance_minimality_loss, impl, "matrices_combined")
    assert "`first` is [inst C] [3, 5]: the batch axis reduced" in failure.hint


def test_minimality_clash_without_evidence_lists_the_causes():
    def impl(cis, p, eps=1e-12):
        a, b = cis
        per = a.pow(p) + b.pow(p) + eps
        return per.sum(-1).mean(0).sum()

    failure = assert_fails(checks.test_importance_minimality_loss, impl, "matrices_combined")
    assert "added or stacked before the power" in failure.hint and ".sum(1) sums the instances" in failure.hint
