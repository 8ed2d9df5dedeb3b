"""Proofs for part 8's svd_terms: terms that don't add up to W are told apart by what they are. An exact SVD of
another matrix (W jittered with noise before decomposing) is named as W changed before the SVD; singular vectors
from a power iteration stopped early (close to W, not an exact SVD) as inexact singular vectors."""

from __future__ import annotations

import torch

import tests.part8_parameter_decomposition as checks
from tests.proving import assert_fails, assert_passes


def test_noise_added_before_the_svd_is_named_as_a_perturbed_w():
    def svd_terms(W):
        Wj = W + 1e-3 * torch.randn(W.shape, generator=torch.Generator().manual_seed(0)).to(W)
        U, S, Vh = torch.linalg.svd(Wj, full_matrices=False)
        return torch.einsum("iak,ik,ikb->ikab", U, S, Vh)

    hint = assert_fails(checks.test_svd_terms, svd_terms, code="perturbed_W").hint
    assert "full rank" in hint and "jitter" in hint


def _power_svd(n_iter):
    def svd_terms(W):
        R, out = W.clone(), []
        for _ in range(min(W.shape[-2:])):
            v = torch.ones(W.shape[0], W.shape[-1], dtype=W.dtype) / W.shape[-1] ** 0.5
            for _ in range(n_iter):
                v = torch.nn.functional.normalize(torch.einsum("iab,iac,ic->ib", R, R, v), dim=-1)
            u = torch.einsum("iab,ib->ia", R, v)
            term = torch.einsum("ia,ib->iab", u, v)  # σ u v: u unnormalised carries σ
            out.append(term)
            R = R - term
        return torch.stack(out, 1)

    return svd_terms


def test_an_unconverged_power_iteration_is_named_as_inexact_singular_vectors():
    hint = assert_fails(checks.test_svd_terms, _power_svd(8), code="inexact_svd").hint
    assert "torch.linalg.svd" in hint


def test_the_correct_svd_passes():
    def svd_terms(W):
        U, S, Vh = torch.linalg.svd(W, full_matrices=False)
        return torch.einsum("iak,ik,ikb->ikab", U, S, Vh)

    assert_passes(checks.test_svd_terms, svd_terms)
