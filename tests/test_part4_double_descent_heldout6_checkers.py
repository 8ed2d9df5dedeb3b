"""Proofs for part 4's fresh19 held-out fixes: generate_batch tiling the training set to reach a batch size above
n_train (called with 100 > 40), get_parameter on the train_data buffer, decay shapes after a right warm-up (exponential,
a power of the cosine, a polynomial), and the dimensionality's denominator with the [d d] matrix applied twice."""

from __future__ import annotations

import math

import einops

import tests.part4_double_descent as p4
from solutions.part4_double_descent import DoubleDescentModel
from tests.proving import assert_fails


def _sub(**methods) -> type:
    return type("Variant", (DoubleDescentModel,), methods)


def gb_tiled(self, batch_size=None):
    n = self.train_data.shape[0]
    return self.train_data.repeat(max(1, (batch_size or n) // n), 1, 1)


def gb_interleaved(self, batch_size=None):
    n = self.train_data.shape[0]
    return self.train_data.repeat_interleave(max(1, (batch_size or n) // n), 0)


def gb_get_parameter(self, batch_size=None):
    return self.get_parameter("train_data")


def _with_decay(decay):
    def lr(step, steps, warmup_steps):
        if step < warmup_steps:
            return step / warmup_steps
        return decay((step - warmup_steps) / (steps - warmup_steps))

    return lr


lr_exponential = _with_decay(lambda t: math.exp(-5 * t))
lr_squared = _with_decay(lambda t: 0.5 * (1 + math.cos(math.pi * t)) ** 2)
lr_quadratic = _with_decay(lambda t: (1 - t) ** 2)


def cd_gram_twice(vectors):
    n2 = vectors.pow(2).sum(-1)
    unit = vectors / n2.sqrt().clamp_min(1e-12)[..., None]
    G = einops.einsum(vectors, vectors, "k n d, k n e -> k d e")
    return n2 / einops.einsum(G, unit, "k d e, k n e -> k n d").pow(2).sum(-1).clamp_min(1e-30)


def test_tiled_batch_named():
    err = assert_fails(p4.test_generate_batch, _sub(generate_batch=gb_tiled), "tiled")
    assert "2 copies of the 40" in err.message and "batch_size // n_train" in err.message
    err = assert_fails(p4.test_generate_batch, _sub(generate_batch=gb_interleaved), "tiled")
    assert "repeated in place" in err.message


def test_wrong_accessor_named():
    err = assert_fails(p4.test_generate_batch, _sub(generate_batch=gb_get_parameter), "wrong_accessor")
    assert "is a buffer" in err.hint and "self.train_data" in err.hint and "get_buffer" in err.hint


def test_decay_shape_named():
    err = assert_fails(p4.test_warmup_cosine_lr, lr_exponential, "decay_shape")
    assert "exp(-5 · progress)" in err.hint
    err = assert_fails(p4.test_warmup_cosine_lr, lr_squared, "decay_shape")
    assert "2 · (0.5 (1 + cos(π progress)))^2" in err.hint
    err = assert_fails(p4.test_warmup_cosine_lr, lr_quadratic, "decay_shape")
    assert "(1 - progress)^2" in err.hint


def test_gram_applied_twice_named():
    err = assert_fails(p4.test_compute_dimensionality, cd_gram_twice, "gram_applied_twice")
    assert "applied twice" in err.hint


def test_warmup_overwritten_by_the_decay_is_named():
    # no else/return after the warm-up branch: the decay formula runs for every step and overwrites it
    def lr(step, steps, warmup_steps):
        value = step / warmup_steps if step < warmup_steps else 1.0
        progress = (step - warmup_steps) / max(1, steps - warmup_steps)
        value = 0.5 * (1 + math.cos(math.pi * progress))
        return value

    err = assert_fails(p4.test_warmup_cosine_lr, lr, "warmup_overwritten")
    assert "overwritten by the decay" in err.hint
