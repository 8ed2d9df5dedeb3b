"""Proofs for the fresh18 held-out fixes in part 4: empty examples filled by a NaN replacement (not an epsilon), the
mask added instead of multiplied (every entry non-zero: causes listed, not 'one mask reused'), warm-up schedules with
warmup_steps = 1 and 2, the training set rounded to float16, and the numerator ‖V‖²_F of the whole instance (the
helper part 3 uses)."""

from __future__ import annotations

import math

import einops
import torch

import tests.part4_double_descent as p4
from solutions.part4_double_descent import DoubleDescentModel
from tests.proving import assert_fails


def _shape_and_present(n, k, f, p, device):
    s = (n, k, f)
    return s, torch.rand(s, device=device) < p


def gen_nan_fill(n_examples, n_inst, n_features, feature_probability, device=None):
    s, present = _shape_and_present(n_examples, n_inst, n_features, feature_probability, device)
    x = torch.where(present, torch.rand(s, device=device), 0.0)
    return torch.nan_to_num(x / x.norm(dim=-1, keepdim=True), nan=1.0)


def gen_mask_plus(n_examples, n_inst, n_features, feature_probability, device=None):
    s, present = _shape_and_present(n_examples, n_inst, n_features, feature_probability, device)
    x = present.float() + torch.rand(s, device=device)
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def lr_skip_one(step, steps, warmup_steps):
    if warmup_steps > 1 and step < warmup_steps:
        return step / warmup_steps
    return 0.5 * (1 + math.cos(math.pi * (step - warmup_steps) / (steps - warmup_steps)))


class HalfBatch(DoubleDescentModel):
    def generate_batch(self, batch_size=None):
        return self.train_data.half().float()


def cd_frob(v):
    n2 = v.pow(2).sum(-1)
    unit = v / n2.sqrt().clamp_min(1e-12)[..., None]
    den = einops.einsum(unit, v, "k i d, k j d -> k i j").pow(2).sum(-1)
    num = v.pow(2).sum((1, 2))[:, None].expand_as(n2)
    return torch.where(n2 > 0, num / den.clamp_min(1e-30), 0.0)


def test_dataset_fills():
    err = assert_fails(p4.test_generate_dataset, gen_nan_fill, "empty_filled")
    assert "nan_to_num" in err.hint
    err = assert_fails(p4.test_generate_dataset, gen_mask_plus, "always_present")
    assert "mask added" in err.hint and "reused" not in err.hint


def test_short_warmups():
    err = assert_fails(p4.test_warmup_cosine_lr, lr_skip_one, "one_change")
    assert "warmup_steps=1" in err.message


def test_float16_round_trip():
    err = assert_fails(p4.test_generate_batch, HalfBatch, "transformed")
    assert "float16" in err.hint


def test_whole_instance_norm():
    err = assert_fails(p4.test_compute_dimensionality, cd_frob, "one_norm")
    assert "numerator" in err.hint and "unit vectors" in err.hint
