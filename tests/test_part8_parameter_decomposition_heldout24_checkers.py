"""Proofs: importance_minimality_loss with eps multiplied in ((g·(1 + eps))^p) is told by its eps = 0 probe, and one
with the first matrix's term left without the power and eps by the one-matrix-at-a-time probe."""

from __future__ import annotations

import tests.part8_parameter_decomposition as checks
from tests.proving import assert_fails, assert_passes


def test_minimality_eps_multiplied():
    def impl(cis, p, eps=1e-12):
        return sum((g * (1 + eps)).pow(p).sum(-1) for g in cis).mean(0).sum()

    assert_fails(checks.test_importance_minimality_loss, impl, "eps_placement")


def test_minimality_first_matrix_without_power():
    def impl(cis, p, eps=1e-12):
        tot = cis[0].sum(-1)
        for g in cis[1:]:
            tot = tot + (g + eps).pow(p).sum(-1)
        return tot.mean(0).sum()

    assert_fails(checks.test_importance_minimality_loss, impl, "matrix_term")


def test_minimality_running_sum_correct():
    def impl(cis, p, eps=1e-12):
        tot = (cis[0] + eps).pow(p).sum(-1)
        for g in cis[1:]:
            tot = tot + (g + eps).pow(p).sum(-1)
        return tot.mean(0).sum()

    assert_passes(checks.test_importance_minimality_loss, impl)
