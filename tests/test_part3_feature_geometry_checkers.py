"""Proofs for part 3's checkers: the reference and differently written correct variants pass, realistic
buggy variants fail with the expected hint code, and stubs are reported as not done."""

from __future__ import annotations

import einops
import pytest
import torch

import tests.part3_feature_geometry as checks
from solutions.part3_feature_geometry import compute_dimensionality, dimensions_per_feature
from tests.proving import assert_fails, assert_not_done, assert_passes


def stub(W):
    raise NotImplementedError("not implemented yet")


# --------------------------------------------------------------------------------------------
# dimensions_per_feature
# --------------------------------------------------------------------------------------------
def dpf_norm(W):
    return W.shape[1] / torch.linalg.matrix_norm(W, ord="fro") ** 2


def dpf_einsum(W):
    d = W.size(-2)
    return d * torch.einsum("kdf,kdf->k", W, W).reciprocal()


def dpf_flatten(W):
    return W.shape[1] / (W.flatten(1) ** 2).sum(-1)


def dpf_sqrt(W):
    return W.shape[1] / torch.linalg.matrix_norm(W, ord="fro")


def dpf_inverted(W):
    return (W**2).sum((1, 2)) / W.shape[1]


def dpf_features(W):
    return W.shape[2] / (W**2).sum((1, 2))


def dpf_instances(W):
    return W.shape[0] / (W**2).sum((1, 2))


def dpf_squeeze(W):
    return (W.shape[1] / (W**2).sum((1, 2))).squeeze()


def dpf_total(W):
    return W.shape[1] / (W**2).sum()


def dpf_float64(W):
    return W.shape[1] / (W.double() ** 2).sum((1, 2))


@pytest.mark.parametrize("impl", [dimensions_per_feature, dpf_norm, dpf_einsum, dpf_flatten])
def test_dimensions_per_feature_accepts(impl):
    assert_passes(checks.test_dimensions_per_feature, impl)


@pytest.mark.parametrize(
    "impl, code",
    [
        (dpf_sqrt, "frobenius_square"),
        (dpf_inverted, "inverted"),
        (dpf_features, "numerator"),
        (dpf_instances, "numerator"),
        (dpf_squeeze, "squeezed"),
        (dpf_total, "shape"),
        (dpf_float64, "dtype"),
    ],
)
def test_dimensions_per_feature_rejects(impl, code):
    assert_fails(checks.test_dimensions_per_feature, impl, code)


def test_dimensions_per_feature_stub():
    assert_not_done(checks.test_dimensions_per_feature, stub)


# --------------------------------------------------------------------------------------------
# compute_dimensionality
# --------------------------------------------------------------------------------------------
def dim_normalised(W):
    """The definition as written: normalise with a clamped norm, then replace 0/0 by 0."""
    norms = W.norm(dim=1, keepdim=True)
    W_hat = W / norms.clamp_min(1e-12)
    dots = einops.einsum(W_hat, W, "inst d i, inst d j -> inst i j")
    den = dots.pow(2).sum(-1)
    num = norms.squeeze(1) ** 2
    return torch.where(den > 0, num / den.clamp_min(1e-30), 0.0)


def dim_nan_to_num(W):
    """Lets 0/0 happen and cleans it up afterwards."""
    norms = torch.linalg.vector_norm(W, dim=1)
    W_hat = W / norms[:, None, :]
    dots = torch.bmm(W_hat.transpose(1, 2), W)
    return torch.nan_to_num(norms**2 / (dots**2).sum(-1), nan=0.0)


def dim_gram(W):
    """Through the Gram matrix: (W_i·W_j)² / ‖W_i‖² summed over j, with an epsilon."""
    gram = W.transpose(1, 2) @ W
    norms_sq = torch.diagonal(gram, dim1=1, dim2=2)
    den = (gram**2).sum(-1) / (norms_sq + 1e-20)
    return norms_sq / (den + 1e-20)


def dim_loop(W):
    """A loop over instances with a mask for the zero features."""
    out = []
    for Wk in W:
        n = (Wk**2).sum(0)
        alive = n > 0
        Wh = torch.zeros_like(Wk)
        Wh[:, alive] = Wk[:, alive] / n[alive].sqrt()
        den = ((Wh.T @ Wk) ** 2).sum(1)
        Dk = torch.zeros_like(n)
        Dk[alive] = n[alive] / den[alive]
        out.append(Dk)
    return torch.stack(out)


def _dots(W):
    W_hat = W / W.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return W_hat, einops.einsum(W_hat, W, "inst d i, inst d j -> inst i j"), (W**2).sum(1)


def _safe(num, den):
    return torch.where(den > 0, num / den, 0.0)


def dim_no_square(W):
    _, dots, n = _dots(W)
    return _safe(n, dots.abs().sum(-1))


def dim_exclude_self(W):
    _, dots, n = _dots(W)
    return _safe(n, (dots**2).sum(-1) - torch.diagonal(dots, dim1=1, dim2=2) ** 2)


def dim_wrong_axis(W):
    W_hat = W / W.norm(dim=2, keepdim=True).clamp_min(1e-12)
    dots = einops.einsum(W_hat, W, "inst d i, inst d j -> inst i j")
    return _safe((W**2).sum(1), (dots**2).sum(-1))


def dim_both_normalised(W):
    W_hat, _, n = _dots(W)
    dots = einops.einsum(W_hat, W_hat, "inst d i, inst d j -> inst i j")
    return _safe(n, (dots**2).sum(-1))


def dim_unnormalised(W):
    dots = einops.einsum(W, W, "inst d i, inst d j -> inst i j")
    return _safe((W**2).sum(1), (dots**2).sum(-1))


def dim_numerator_norm(W):
    _, dots, n = _dots(W)
    return _safe(n.sqrt(), (dots**2).sum(-1))


def dim_float64(W):
    return compute_dimensionality(W.double())


def dim_float32(W):
    return compute_dimensionality(W).float()


def dim_squeezed(W):
    return compute_dimensionality(W).squeeze()


def dim_nan(W):
    W_hat = W / W.norm(dim=1, keepdim=True)
    dots = einops.einsum(W_hat, W, "inst d i, inst d j -> inst i j")
    return (W**2).sum(1) / (dots**2).sum(-1)


def dim_zero_is_one(W):
    out = compute_dimensionality(W)
    return torch.where((W**2).sum(1) == 0, torch.ones_like(out), out)


@pytest.mark.parametrize("impl", [compute_dimensionality, dim_normalised, dim_nan_to_num, dim_gram, dim_loop])
def test_compute_dimensionality_accepts(impl):
    assert_passes(checks.test_compute_dimensionality, impl)


@pytest.mark.parametrize(
    "impl, code",
    [
        (dim_no_square, "denominator_square"),
        (dim_exclude_self, "self_term"),
        (dim_wrong_axis, "normalise_axis"),
        (dim_both_normalised, "normalise_both"),
        (dim_unnormalised, "normalise"),
        (dim_numerator_norm, "numerator_square"),
        (dim_float64, "dtype"),
        (dim_float32, "dtype"),
        (dim_squeezed, "squeezed"),
        (dim_nan, "zero_feature"),
        (dim_zero_is_one, "zero_feature"),
    ],
)
def test_compute_dimensionality_rejects(impl, code):
    assert_fails(checks.test_compute_dimensionality, impl, code)


def test_compute_dimensionality_stub():
    assert_not_done(checks.test_compute_dimensionality, stub)


def test_compute_dimensionality_rejects_bad_input():
    with pytest.raises(ValueError, match="inst, d_hidden, feats"):
        compute_dimensionality(torch.ones(4, 7))
