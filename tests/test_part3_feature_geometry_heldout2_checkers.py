"""Proofs for the fresh10 held-out fixes in part 3: a rank numerator, norms summed then squared and the Gram sum in
D*; L1-normalised dimensionality and the self-term counted twice; fresh13: a numerator that counts d_hidden · feats."""

from __future__ import annotations

import einops
import torch

import tests.part3_feature_geometry as p3
from tests.proving import assert_fails


def d_rank(W):
    return torch.linalg.matrix_rank(W).float() / W.pow(2).sum((1, 2))


def d_sum_norms_sq(W):
    return W.shape[1] / W.norm(dim=1).sum(-1).pow(2)


def d_gram_sum(W):
    return W.shape[1] / (W.mT @ W).sum((1, 2))


def cd3_l1(W):
    norms_sq = W.pow(2).sum(1)
    unit = W / W.abs().sum(1, keepdim=True).clamp_min(1e-12)
    return norms_sq / einops.einsum(unit, W, "k d i, k d j -> k i j").pow(2).sum(-1).clamp_min(1e-30)


def cd3_self_twice(W):
    norms_sq = W.pow(2).sum(1)
    unit = W / norms_sq.sqrt().clamp_min(1e-12).unsqueeze(1)
    den = einops.einsum(unit, W, "k d i, k d j -> k i j").pow(2).sum(-1) + norms_sq
    return torch.where(den > 0, norms_sq / den.clamp_min(1e-30), torch.zeros_like(norms_sq))


def test_part3_dimensions():
    assert_fails(p3.test_dimensions_per_feature, d_rank, "numerator_rank")
    assert_fails(p3.test_dimensions_per_feature, d_sum_norms_sq, "norms_summed_squared")
    assert_fails(p3.test_dimensions_per_feature, d_gram_sum, "gram_sum")
    err = assert_fails(p3.test_compute_dimensionality, cd3_l1, "not_rotation_invariant")
    assert "L1" in err.hint
    assert_fails(p3.test_compute_dimensionality, cd3_self_twice, "self_term_twice")


# fresh12: .T on a 3-d W, one norm for the whole tensor (or per instance), and a clamp(min=1) on the column norms.
def d_dot_t(W):
    return W.shape[1] / (W.permute(2, 1, 0) ** 2).sum(dim=(1, 2))  # what W.T does to a 3-d tensor


def _cd_with(unit):
    def compute_dimensionality(W):
        num = W.pow(2).sum(1)
        den = einops.einsum(unit(W), W, "i d f, i d g -> i f g").pow(2).sum(-1)
        return torch.where(num > 0, num / den.clamp_min(1e-30), 0.0)

    return compute_dimensionality


def test_part3_heldout12():
    err = assert_fails(p3.test_dimensions_per_feature, d_dot_t, "reduce_axes")
    assert "W.T on a 3-d tensor" in err.hint
    cd = p3.test_compute_dimensionality
    err = assert_fails(cd, _cd_with(lambda W: W / W.norm()), "one_norm")
    assert "no dim=" in err.hint
    assert_fails(cd, _cd_with(lambda W: W / W.norm(dim=(1, 2), keepdim=True)), "one_norm")
    err = assert_fails(cd, _cd_with(lambda W: W / W.norm(dim=1, keepdim=True).clamp(min=1)), "norm_threshold")
    assert "clamp(min=1)" in err.hint and "shorter" in err.message


# fresh13: W.flatten(1).shape[1] = d_hidden · feats as the numerator gives the values of a mean over the features
def d_flat_numerator(W):
    flat = W.flatten(1)
    return flat.shape[1] / flat.pow(2).sum(-1)


def test_part3_heldout13():
    err = assert_fails(p3.test_dimensions_per_feature, d_flat_numerator, "mean_over_features")
    assert "Possible causes" in err.hint and "d_hidden · feats" in err.hint and "mean" in err.hint
