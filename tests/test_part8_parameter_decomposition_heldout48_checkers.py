"""Proofs for part 8 after the fresh47 round's second pass: svd_terms with the signs of the singular vectors lost
(|U|, |Vh|: `abs_singular_vectors`), and the round's correct variant (u_k u_kᵀ W per term)."""

from __future__ import annotations

import einops
import torch

import tests.part8_parameter_decomposition as checks
from tests.proving import assert_fails, assert_passes


def _svd_abs(which):
    def svd_terms(W):
        U, Sv, Vh = torch.linalg.svd(W, full_matrices=False)
        U, Vh = (U.abs(), Vh) if which == "U" else (U, Vh.abs())
        return einops.einsum(U, Sv, Vh, "inst d_out r, inst r, inst r d_in -> inst r d_out d_in")

    return svd_terms


def test_svd_abs_U_named():
    failure = assert_fails(checks.test_svd_terms, _svd_abs("U"), "abs_singular_vectors")
    assert "|U|" in str(failure)


def test_svd_abs_Vh_named():
    failure = assert_fails(checks.test_svd_terms, _svd_abs("Vh"), "abs_singular_vectors")
    assert "|Vh|" in str(failure)


def _svd_projector_times_W(W):
    U, _, _ = torch.linalg.svd(W, full_matrices=False)
    P = U.mT[..., :, :, None] * U.mT[..., :, None, :]
    return torch.einsum("irab,ibc->irac", P, W)


def test_svd_projector_times_W_passes():
    assert_passes(checks.test_svd_terms, _svd_projector_times_W)
