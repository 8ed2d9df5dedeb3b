"""Proofs for section 4 (confidence audit, round 49): compute_dimensionality's rotation and 'ignores the other
vectors' readings (shared with part 3) name a cause only when its formula, computed on the checker's own vectors,
reproduces the learner's values, and otherwise state what was observed. The past misleading trials (float16 data,
a positional p in norm, the first buffer, F.normalize's eps, entries clamped) keep hints without the wrong cause."""

from __future__ import annotations

import math

import einops
import torch
import torch.nn.functional as F

import tests.part4_double_descent as checks
from solutions.part4_double_descent import DoubleDescentModel
from tests.proving import assert_fails

OLD_ROTATION_GUESS = "an elementwise product, a max or a norm over the wrong axis"


def _ov(u, v):
    return einops.einsum(u, v, "inst i d, inst j d -> inst i j")


# past misleading trials (fresh45, fresh46)
def gen_half_open_threshold_float16(n_examples, n_inst, n_features, feature_probability, device=None):
    shape = (n_examples, n_inst, n_features)
    u = torch.rand(shape, device=device, dtype=torch.float16)
    present = u < feature_probability
    x = torch.where(present, torch.rand(shape, device=device, dtype=torch.float16), 0.0)
    x = x / x.norm(dim=-1, keepdim=True).clamp_min(1e-4)
    return x.float()


def gen_norm_positional_p(n_examples, n_inst, n_features, feature_probability, device=None):
    shape = (n_examples, n_inst, n_features)
    present = torch.rand(shape, device=device) < feature_probability
    x = torch.where(present, torch.rand(shape, device=device), 0.0)
    return x / x.norm(-1, keepdim=True).clamp_min(1e-12)


def gb_first_buffer(self, batch_size=None):
    return next(self.buffers())


def cd_normalize_eps(v):
    n2 = (v**2).sum(-1)
    u = F.normalize(v, dim=-1, eps=1e-3)
    return n2 / _ov(u, v).pow(2).sum(-1).clamp_min(1e-30)


def cd_clamp_entries(v):
    n2 = (v**2).sum(-1)
    u = v / v.clamp_min(1e-12).norm(dim=-1, keepdim=True)
    return n2 / _ov(u, v).pow(2).sum(-1).clamp_min(1e-30)


def test_past_misleading_trials():
    err = assert_fails(checks.test_generate_dataset, gen_half_open_threshold_float16, "low_precision")
    assert "divide every example by its L2 norm" not in (err.hint or "")
    err = assert_fails(checks.test_generate_dataset, gen_norm_positional_p, "common_divisor")
    assert "squared norm" not in (err.hint or "")
    variant = type("GbFirstBuffer", (DoubleDescentModel,), {"generate_batch": gb_first_buffer})
    err = assert_fails(checks.test_generate_batch, variant, "other_tensor")
    assert "an axis is missing" not in err.message
    err = assert_fails(checks.test_compute_dimensionality, cd_normalize_eps, "norm_floor")
    err = assert_fails(checks.test_compute_dimensionality, cd_clamp_entries, "clamped_entries")
    assert OLD_ROTATION_GUESS not in (err.hint or "")


# new variants: the same evidence (a rotation changes the values; other vectors are ignored), other causes
def cd_l1_both(v):
    l1 = v.abs().sum(-1)
    u = v / l1.clamp_min(1e-12)[..., None]
    return l1**2 / _ov(u, v).pow(2).sum(-1).clamp_min(1e-30)


def cd_sign_overlaps(v):
    # overlaps through sign(v): the coordinates' signs, not a norm or axis slip
    n2 = (v**2).sum(-1)
    u = v / v.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return n2 / _ov(u, v.sign()).pow(2).sum(-1).clamp_min(1e-30)


def cd_self_cubed(v):
    # only the j = i overlap, cubed: no listed cause
    n2 = (v**2).sum(-1)
    u = v / v.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return n2 / (u * v).sum(-1).pow(3).clamp_min(1e-30)


def test_rotation_reading_names_only_what_reproduces():
    err = assert_fails(checks.test_compute_dimensionality, cd_l1_both, "not_rotation_invariant")
    assert "L1 norm in both" in err.hint and "L∞" not in err.hint
    err = assert_fails(checks.test_compute_dimensionality, cd_sign_overlaps, "not_rotation_invariant")
    assert "your formula uses" not in err.hint and OLD_ROTATION_GUESS not in err.hint


def test_ignores_others_reading_names_only_what_reproduces():
    err = assert_fails(checks.test_compute_dimensionality, cd_self_cubed, "ignores_others")
    assert "your formula uses" not in err.hint and "Possible causes" not in err.hint


def lr_zero_warmup_over_steps_minus_one(step, steps, warmup_steps):
    # with no warm-up the cosine runs over steps - 1: the cosine is there, no early return skips it
    if warmup_steps == 0:
        return 0.5 * (1 + math.cos(math.pi * step / (steps - 1)))
    if step < warmup_steps:
        return step / warmup_steps
    return 0.5 * (1 + math.cos(math.pi * (step - warmup_steps) / (steps - warmup_steps)))


def test_zero_warmup_reading_guesses_no_early_return():
    err = assert_fails(checks.test_warmup_cosine_lr, lr_zero_warmup_over_steps_minus_one, "zero_warmup_case")
    assert "early return" not in err.hint and "skips the cosine" not in err.hint


def gen_divisor_jittered(n_examples, n_inst, n_features, feature_probability, device=None):
    # the learner did divide by the L2 norm, times a per-example factor in [0.5, 1.5): no listed divisor
    shape = (n_examples, n_inst, n_features)
    present = torch.rand(shape, device=device) < feature_probability
    x = torch.where(present, torch.rand(shape, device=device), 0.0)
    jitter = 0.5 + torch.rand(n_examples, n_inst, 1, device=device)
    return x / (x.norm(dim=-1, keepdim=True) * jitter).clamp_min(1e-12)


def test_unit_norm_fallback_states_the_norms():
    err = assert_fails(checks.test_generate_dataset, gen_divisor_jittered, "not_unit_norm")
    assert "range from" in err.hint and "divide every example by its L2 norm" not in err.hint


def gen_divided_by_cube_root_count(n_examples, n_inst, n_features, feature_probability, device=None):
    # 3 √count: neither the count nor its square root alone, so the hint must not assert either
    shape = (n_examples, n_inst, n_features)
    present = torch.rand(shape, device=device) < feature_probability
    x = torch.where(present, torch.rand(shape, device=device), 0.0)
    return x / (3 * (x > 0).sum(-1, keepdim=True).clamp_min(1).sqrt())


def test_norm_below_one_names_a_count_divisor_only_by_read_back():
    err = assert_fails(checks.test_generate_dataset, gen_divided_by_cube_root_count, "norm_below_one")
    assert "so the divisor was" not in err.hint and "Possible causes" not in err.hint
