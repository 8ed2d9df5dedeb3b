"""Proofs for section 3 (held-out round BA): compute_dimensionality reads back the powers of the norms in a formula
that is not scale-free, ‖W_i‖^a / (Σ_j cos²_ij ‖W_j‖^b)^e, and names the powers that differ from (2, 2, 1): the row
norm of the overlaps where its square belongs, cosines weighted by ‖W_j‖ or ‖W_j‖⁴, and two slips that leave ‖W_i‖³.
Part 4's compute_dimensionality (the same probe) names the unsquared row norm too. The round's correct variants
pass."""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import tests.part3_feature_geometry as checks
from tests.proving import assert_fails, assert_passes

dpf, cd = checks.test_dimensions_per_feature, checks.test_compute_dimensionality


def cd_row_norm(W):
    ns = W.pow(2).sum(1)
    unit = W / ns.sqrt().clamp_min(1e-12)[:, None]
    den = torch.linalg.vector_norm(unit.mT @ W, dim=-1)
    return torch.where(den > 0, ns / den, 0.0)


def _cosines(weight):
    def compute_dimensionality(W):
        n = W.norm(dim=1)
        U = F.normalize(W, dim=1)
        den = ((U.mT @ U).pow(2) * weight(n)[:, None, :]).sum(-1)
        return torch.where(n > 0, n**2 / den.clamp_min(1e-30), 0.0)

    return compute_dimensionality


def cd_unit_by_norm_squared(W):
    ns = W.pow(2).sum(1)
    U = W / ns.clamp_min(1e-12)[:, None]
    den = (U.mT @ W).pow(2).sum(-1)
    return torch.where(ns > 0, ns.sqrt() / den.clamp_min(1e-30), 0.0)


def test_row_norm_of_the_overlaps_is_named():
    err = assert_fails(cd, cd_row_norm, "norm_powers")
    assert "(Σ_j cos²_ij ‖W_j‖²)^½" in err.message and "square root" in err.hint


def test_cosine_weights_are_read_back():
    err = assert_fails(cd, _cosines(lambda n: n), "norm_powers")
    assert "Σ_j cos²_ij ‖W_j‖ exactly" in err.message
    err = assert_fails(cd, _cosines(lambda n: n**4), "norm_powers")
    assert "‖W_j‖⁴" in err.message


def test_two_slips_in_the_power_of_the_own_norm_are_read_back():
    err = assert_fails(cd, cd_unit_by_norm_squared, "norm_powers")
    assert "‖W_i‖³" in err.message and "off by 1" in err.hint


def test_correct_variants_pass():
    for fn in (
        lambda W: W.shape[1] / torch.diagonal(W.mT @ W, dim1=-2, dim2=-1).sum(-1),
        lambda W: W.shape[1] / torch.linalg.svdvals(W).pow(2).sum(-1),
        lambda W: W.shape[1] * einops.reduce(W**2, "k d f -> k", "sum").reciprocal(),
        lambda W: torch.full((W.shape[0],), W.shape[1], device=W.device) / (W**2).sum(axis=(1, 2)),
    ):
        assert_passes(dpf, fn)

    def cd_gram_form(W):
        ns = W.pow(2).sum(1)
        U = W / ns.sqrt().clamp_min(1e-12)[:, None]
        den = torch.einsum("kdi,kde,kei->ki", U, W @ W.mT, U)
        return torch.where(den > 0, ns / den, torch.zeros_like(ns))

    def cd_diag_numerator(W):
        ov = (W / W.norm(dim=1, keepdim=True).clamp_min(1e-12)).mT @ W
        den = ov.pow(2).sum(-1)
        return torch.where(den > 0, ov.diagonal(dim1=1, dim2=2).pow(2) / den.clamp_min(1e-30), 0.0)

    def cd_cosine_similarity(W):
        ns = W.pow(2).sum(1)
        cos = torch.cosine_similarity(W[:, :, :, None], W[:, :, None, :], dim=1)
        return torch.where(ns > 0, ns / (cos.pow(2) * ns[:, None, :]).sum(-1).clamp_min(1e-30), torch.zeros_like(ns))

    for fn in (cd_gram_form, cd_diag_numerator, cd_cosine_similarity, _cosines(lambda n: n**2)):
        assert_passes(cd, fn)


def cd_first_feature_norm(W):
    ns = W.pow(2).sum(1)
    unit = W / ns[:, :1].sqrt()[:, None]  # feature 0's norm for every column
    den = (unit.mT @ W).pow(2).sum(-1)
    return torch.where(den > 0, ns / den, 0.0)


def test_one_norm_per_instance_is_read_back():
    err = assert_fails(cd, cd_first_feature_norm, "normalised_by_one_norm")
    assert "feature 0's norm" in err.message


def _safe_division(e_num, e_den, unnormalised=False):
    def compute_dimensionality(W):
        ns = W.pow(2).sum(1)
        if unnormalised:
            return (ns**2 + e_num) / (torch.einsum("kdi,kdj->kij", W, W).pow(2).sum(-1) + e_den)
        unit = W / ns.sqrt().clamp_min(1e-12)[:, None]
        den = (unit.mT @ W).pow(2).sum(-1)
        return torch.where(den > 0, (ns + e_num) / (den + e_den), 0.0)

    return compute_dimensionality


def test_constants_added_to_the_ratio_are_read_back_not_called_a_threshold():
    err = assert_fails(cd, _safe_division(1e-3, 0.0), "eps_offsets")
    assert "(‖W_i‖² + 0.001) / Σ_j" in err.message
    err = assert_fails(cd, _safe_division(1e-3, 1e-3), "eps_offsets")
    assert "+ 0.001) / (Σ_j (Ŵ_i·W_j)² + 0.001)" in err.message
    assert_fails(cd, _safe_division(1e-4, 1e-4, unnormalised=True), "eps_offsets")


def test_dpf_laws_are_read_back_on_two_scales():
    err = assert_fails(dpf, lambda W: W.shape[2] / W.norm(dim=(1, 2)), "dpf_law")
    assert "n_features = 8" in err.hint and "not squared" in err.hint
    err = assert_fails(dpf, lambda W: W.shape[1] / (W.pow(2).sum((1, 2)) + 1e-3), "dpf_law")
    assert "+ 0.001" in err.message
