"""Proofs for part 3's checkers: the reference and differently written correct variants pass, realistic
buggy variants fail with their own hint code, and stubs are reported as not done."""

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


def dpf_loop(W):
    return torch.stack([Wk.shape[0] / (Wk * Wk).sum() for Wk in W])


def dpf_mean_times_count(W):
    return W.shape[1] / (W.pow(2).mean((1, 2)) * W.shape[1] * W.shape[2])


def dpf_sqrt(W):
    return W.shape[1] / torch.linalg.matrix_norm(W, ord="fro")


def dpf_inverted(W):
    return (W**2).sum((1, 2)) / W.shape[1]


def dpf_features(W):
    return W.shape[-1] / (W**2).sum((1, 2))


def dpf_instances(W):
    return len(W) / (W**2).sum((1, 2))


def dpf_one(W):
    return 1 / (W**2).sum((1, 2))


def dpf_hardcoded(W):
    return 10 / (W**2).sum((1, 2))


def dpf_mean(W):
    return W.shape[1] / (W**2).mean((1, 2))


def dpf_norms_not_squared(W):
    return W.shape[1] / W.norm(dim=1).sum(-1)


def dpf_total(W):
    return W.shape[1] / (W**2).sum()


def dpf_per_feature(W):
    return W.shape[1] / (W**2).sum(1)


def dpf_wrong_axes(W):
    return W.shape[1] / (W**2).sum((0, 1))


def dpf_first_instance(W):
    return torch.stack([W.shape[1] / (W[0] ** 2).sum() for _ in W])


def dpf_squeeze(W):
    return (W.shape[1] / (W**2).sum((1, 2))).squeeze()


def dpf_float64(W):
    return W.shape[1] / (W.double() ** 2).sum((1, 2))


def dpf_in_place(W):
    W.pow_(2)
    return W.shape[1] / W.sum((1, 2))


def dpf_counted(W):
    represented = (W**2).sum(1) > 0.5
    return W.shape[1] / represented.sum(-1).float()


def dpf_spectral(W):
    return W.shape[1] / torch.linalg.matrix_norm(W, ord=2) ** 2


def dpf_abs(W):
    return W.shape[1] / W.abs().sum((1, 2))


def dpf_gram_sum(W):
    return W.shape[1] / (W @ W.transpose(1, 2)).sum((1, 2))


def dpf_mean_over_features(W):
    return W.shape[1] / W.pow(2).sum(1).mean(-1)


def dpf_numerator_off_by_one(W):
    return (W.shape[1] - 1) / W.pow(2).sum((1, 2))


def dpf_last_axis_only(W):
    return W.shape[1] / W.pow(2).sum(-1)


@pytest.mark.parametrize(
    "impl", [dimensions_per_feature, dpf_norm, dpf_einsum, dpf_flatten, dpf_loop, dpf_mean_times_count]
)
def test_dimensions_per_feature_accepts(impl):
    assert_passes(checks.test_dimensions_per_feature, impl)


DPF_MISTAKES = [
    (dpf_sqrt, "frobenius_square"),
    (dpf_inverted, "inverted"),
    (dpf_features, "numerator_features"),
    (dpf_instances, "numerator_instances"),
    (dpf_one, "numerator_one"),
    (dpf_hardcoded, "hardcoded_d_hidden"),
    (dpf_mean, "mean_not_sum"),
    (dpf_norms_not_squared, "norms_not_squared"),
    (dpf_total, "all_instances"),
    (dpf_per_feature, "per_feature"),
    (dpf_wrong_axes, "reduce_axes"),
    (dpf_first_instance, "first_instance"),
    (dpf_squeeze, "squeezed"),
    (dpf_float64, "upcast"),
    (dpf_in_place, "modified_input"),
    (dpf_counted, "counted_features"),
    (dpf_spectral, "spectral_norm"),
    (dpf_abs, "abs_not_squared"),
    (dpf_gram_sum, "gram_sum"),
    (dpf_mean_over_features, "mean_over_features"),
    (dpf_numerator_off_by_one, "numerator"),
    (dpf_last_axis_only, "reduce_axes"),
]


@pytest.mark.parametrize("impl, code", DPF_MISTAKES, ids=[f.__name__ for f, _ in DPF_MISTAKES])
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


def dim_hidden_gram(W):
    """Through the d x d matrix G = Σ_j W_j W_jᵀ: Σ_j (Ŵ_i·W_j)² = Ŵ_iᵀ G Ŵ_i."""
    G = W @ W.transpose(1, 2)  # [inst d d]
    W_hat = torch.nn.functional.normalize(W, dim=1)
    quad = einops.einsum(W_hat, G, W_hat, "inst d i, inst d e, inst e i -> inst i")
    n = W.pow(2).sum(1)
    return torch.where(quad > 0, n / quad.clamp_min(1e-30), torch.zeros_like(n))


def _dots(W):
    W_hat = W / W.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return W_hat, einops.einsum(W_hat, W, "inst d i, inst d j -> inst i j"), (W**2).sum(1)


def _safe(num, den):
    return torch.where(den > 0, num / den, 0.0)


def dim_no_square(W):
    _, dots, n = _dots(W)
    return _safe(n, dots.abs().sum(-1))


def dim_square_of_sum(W):
    _, dots, n = _dots(W)
    return _safe(n, dots.sum(-1) ** 2)


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


def dim_numerator_fourth(W):
    _, dots, n = _dots(W)
    return _safe(n**2, (dots**2).sum(-1))


def dim_sum_over_i(W):
    _, dots, n = _dots(W)
    return _safe(n, (dots**2).sum(1))


def dim_mean_over_j(W):
    _, dots, n = _dots(W)
    return _safe(n, (dots**2).mean(-1))


def dim_instance_mixing(W):
    W_hat, _, n = _dots(W)
    dots = torch.einsum("kdi,ldj->kij", W_hat, W)
    return _safe(n, (dots**2).sum(-1))


def dim_first_instance(W):
    W_hat, _, n = _dots(W)
    dots = einops.einsum(W_hat[0], W[0], "d i, d j -> i j")
    return _safe(n[0], (dots**2).sum(-1)).expand(W.shape[0], -1)


def dim_transposed_output(W):
    return compute_dimensionality(W).T


def dim_rows(W):
    return compute_dimensionality(W.transpose(1, 2))


def dim_in_place(W):
    norms_sq = W.pow(2).sum(1)
    W /= W.norm(dim=1, keepdim=True).clamp_min(1e-12)  # normalises the caller's W in place
    dots = einops.einsum(W, W * norms_sq.sqrt()[:, None], "inst d i, inst d j -> inst i j")
    return _safe(norms_sq, (dots**2).sum(-1))


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


def dim_cosines_only(W):
    W_hat = W / W.norm(dim=1, keepdim=True).clamp_min(1e-12)
    den = einops.einsum(W_hat, W_hat, "inst d i, inst d j -> inst i j").pow(2).sum(-1)
    return torch.where(W.norm(dim=1) > 0, 1 / den, 0.0)


def dim_norm_threshold(W):
    norms_sq = W.pow(2).sum(1)
    den = (W.transpose(1, 2) @ W).pow(2).sum(-1)
    return torch.where(norms_sq > 0.1, norms_sq**2 / den.clamp_min(1e-12), 0.0)


def dim_instance_mean(W):
    return compute_dimensionality(W).mean(0, keepdim=True).expand(W.shape[0], -1).clone()


def dim_over_d_hidden(W):
    return compute_dimensionality(W) / W.shape[1]


@pytest.mark.parametrize(
    "impl", [compute_dimensionality, dim_normalised, dim_nan_to_num, dim_gram, dim_loop, dim_hidden_gram]
)
def test_compute_dimensionality_accepts(impl):
    assert_passes(checks.test_compute_dimensionality, impl)


DIM_MISTAKES = [
    (dim_no_square, "not_squared"),
    (dim_square_of_sum, "square_of_sum"),
    (dim_exclude_self, "self_term"),
    (dim_wrong_axis, "normalise_axis"),
    (dim_both_normalised, "normalise_both"),
    (dim_unnormalised, "not_normalised"),
    (dim_numerator_norm, "numerator_square"),
    (dim_numerator_fourth, "numerator_power"),
    (dim_sum_over_i, "sum_axis"),
    (dim_mean_over_j, "mean_not_sum"),
    (dim_instance_mixing, "instance_mixing"),
    (dim_first_instance, "first_instance"),
    (dim_transposed_output, "transposed_output"),
    (dim_rows, "feature_axis"),
    (dim_in_place, "modified_input"),
    (dim_float64, "upcast"),
    (dim_float32, "dtype"),
    (dim_squeezed, "squeezed"),
    (dim_nan, "zero_feature"),
    (dim_zero_is_one, "zero_feature_value"),
    (dim_cosines_only, "sum_axis"),  # the same function as the sum over i: the hint names both
    (dim_norm_threshold, "zeroed_small"),
    (dim_instance_mean, "instance_mean"),
    (dim_over_d_hidden, "factor_d_hidden"),
]


@pytest.mark.parametrize("impl, code", DIM_MISTAKES, ids=[f.__name__ for f, _ in DIM_MISTAKES])
def test_compute_dimensionality_rejects(impl, code):
    assert_fails(checks.test_compute_dimensionality, impl, code)


def test_compute_dimensionality_stub():
    assert_not_done(checks.test_compute_dimensionality, stub)


def test_compute_dimensionality_rejects_bad_input():
    with pytest.raises(ValueError, match="inst, d_hidden, feats"):
        compute_dimensionality(torch.ones(4, 7))
