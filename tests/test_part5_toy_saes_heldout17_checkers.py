"""Proofs for part 5 after the fresh37 measurement: generate_batch returning a feature-space quantity cut to d_in
(W^T W x, the toy model's output) named as that quantity; resample_advanced reading the picked example (or b_dec) from
another instance, shown by a second call on continuous inputs that differ per instance (the main check's axis-aligned
prototypes give the same direction in every instance)."""

from __future__ import annotations

import inspect
import textwrap

import torch

import solutions.part5_toy_saes as P
import tests.part5_toy_saes as checks
from tests.proving import assert_fails


def _from_solution(name: str, old: str, new: str):
    source = textwrap.dedent(inspect.getsource(getattr(P, name)))
    assert old in source
    namespace = dict(vars(P))
    exec(source.replace(old, new), namespace)
    return namespace[name]


OLD = "directions = h[picked, inst] - sae.b_dec[inst]"


def test_picked_input_and_b_dec_of_instance_0():
    resampler = _from_solution("resample_advanced", OLD, "directions = h[picked, 0] - sae.b_dec[0]")
    failure = assert_fails(checks.test_resample_advanced, resampler, "other_instance_input")
    assert "instance 0's inputs minus instance 0's b_dec" in failure.message


def test_b_dec_of_instance_0():  # the main check's prototypes already show this one (kept: it must stay named)
    resampler = _from_solution("resample_advanced", OLD, "directions = h[picked, inst] - sae.b_dec[0]")
    assert_fails(checks.test_resample_advanced, resampler, "b_dec_other_instance")


def test_picked_input_of_the_last_instance():
    resampler = _from_solution("resample_advanced", OLD, "directions = h[picked, -1] - sae.b_dec[-1]")
    failure = assert_fails(checks.test_resample_advanced, resampler, "other_instance_input")
    assert "instance 2's inputs minus instance 2's b_dec" in failure.message  # the probe has 3 instances


def _hidden(sae, x):
    return torch.einsum("bif,idf->bid", x, sae.model.W)


def _cut(fn):
    class Cut(P.ToySAE):
        def generate_batch(self, batch_size):
            x = self.model.generate_batch(batch_size)
            return fn(self, x)[..., : self.cfg.d_in]

    return Cut


def test_W_applied_twice_cut_to_d_in():
    twice = _cut(lambda s, x: torch.einsum("bid,idf->bif", _hidden(s, x), s.model.W))
    failure = assert_fails(checks.test_generate_batch, twice, "decoded")
    assert "W^T W x" in failure.message and "first d_in = 4" in failure.message


def test_model_forward_cut_to_d_in():
    failure = assert_fails(checks.test_generate_batch, _cut(lambda s, x: s.model(x)), "model_output")
    assert "ReLU(W^T W x + b_final)" in failure.message


def test_pre_relu_output_cut_to_d_in():
    pre = _cut(lambda s, x: torch.einsum("bid,idf->bif", _hidden(s, x), s.model.W) + s.model.b_final)
    failure = assert_fails(checks.test_generate_batch, pre, "model_output")
    assert "before its ReLU" in failure.message
