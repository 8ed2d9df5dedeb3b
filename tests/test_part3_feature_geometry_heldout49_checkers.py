"""Proofs for section 3 (confidence audit, round 49): the rotation and 'ignores the other vectors' readings of
compute_dimensionality name a cause only when its formula, computed on the checker's own vectors, reproduces the
learner's values (an L1 or L∞ norm, a product of coordinate sums, a max over j, ...); otherwise they state what was
observed. The past misleading trials (float16, entries clamped, floor division) keep hints without the wrong cause."""

from __future__ import annotations

import einops
import torch

import tests.part3_feature_geometry as p3
from tests.proving import assert_fails

OLD_ROTATION_GUESS = "an elementwise product, a max or a norm over the wrong axis"


def _where(norms_sq, den):
    return torch.where(den > 0, norms_sq / den.clamp_min(1e-30), torch.zeros_like(norms_sq))


# past misleading trials (fresh45, fresh46)
def cd_half_precision(W):
    Wh = W.half()
    norms_sq = Wh.pow(2).sum(1)
    ov = einops.einsum(Wh, Wh, "inst d i, inst d j -> inst i j")
    den = ov.pow(2).sum(-1)
    out = torch.where(den > 0, norms_sq**2 / den, torch.zeros_like(norms_sq))
    return out.to(W.dtype)


def cd_clamp_entries(W):
    norms_sq = W.pow(2).sum(1)
    unit = W / W.clamp_min(1e-12).norm(dim=1, keepdim=True)
    den = einops.einsum(unit, W, "inst d i, inst d j -> inst i j").pow(2).sum(-1)
    return _where(norms_sq, den)


def dpf_floordiv(W):
    return W.shape[1] // W.pow(2).sum(dim=(1, 2))


def test_past_misleading_trials():
    err = assert_fails(p3.test_compute_dimensionality, cd_half_precision, "low_precision")
    assert OLD_ROTATION_GUESS not in (err.hint or "")
    err = assert_fails(p3.test_compute_dimensionality, cd_clamp_entries, "clamped_entries")
    assert "clamp" in err.message and "L1" not in (err.hint or "")
    err = assert_fails(p3.test_dimensions_per_feature, dpf_floordiv, "rounded_result")
    assert "a mean where a sum belongs" not in (err.hint or "")


# new variants: the same evidence (a rotation changes the values; other vectors are ignored), other causes
def cd_linf_unit(W):
    norms_sq = W.pow(2).sum(1)
    unit = W / W.abs().amax(1, keepdim=True).clamp_min(1e-12)
    return _where(norms_sq, einops.einsum(unit, W, "k d i, k d j -> k i j").pow(2).sum(-1))


def cd_weighted_coordinates(W):
    # each hidden coordinate weighted by its index before the dot products: no listed cause
    w = torch.arange(1, W.shape[1] + 1, dtype=W.dtype, device=W.device)[None, :, None]
    norms_sq = W.pow(2).sum(1)
    unit = W / W.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return _where(norms_sq, einops.einsum(unit * w, W, "k d i, k d j -> k i j").pow(2).sum(-1))


def cd_self_overlap_not_squared(W):
    # only the j = i overlap, and not squared: D_i = ‖W_i‖; no listed cause
    norms_sq = W.pow(2).sum(1)
    unit = W / W.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return _where(norms_sq, (unit * W).sum(1))


def test_rotation_reading_names_only_what_reproduces():
    err = assert_fails(p3.test_compute_dimensionality, cd_linf_unit, "not_rotation_invariant")
    assert "L∞" in err.hint and "L1 norm in" not in err.hint
    err = assert_fails(p3.test_compute_dimensionality, cd_weighted_coordinates, "not_rotation_invariant")
    assert "your formula uses" not in err.hint and OLD_ROTATION_GUESS not in err.hint
    assert "largest change" in err.message


def test_ignores_others_reading_names_only_what_reproduces():
    err = assert_fails(p3.test_compute_dimensionality, cd_self_overlap_not_squared, "ignores_others")
    assert "your formula uses" not in err.hint and "Possible causes" not in err.hint
