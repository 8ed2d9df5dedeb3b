"""Proofs for part 2 after the fresh37 measurement: the U[-1, 1] rescale applied after the presence mask (every
absent entry one constant, at the absence rate 1 - p) named as such (`shifted_after_mask`), not as a missing mask."""

from __future__ import annotations

import torch

import tests.part2_privileged_basis as C
from solutions.part2_privileged_basis import NeuronComputationModel
from tests.proving import assert_fails


def _cv(**methods):
    return type("CV", (NeuronComputationModel,), methods)


def _shape(self, n):
    return (n, self.cfg.n_inst, self.cfg.n_features)


def _rescaled_after_mask(scale, shift):
    def generate_batch(self, n):
        s = _shape(self, n)
        return scale * torch.where(torch.rand(s) < self.feature_probability, torch.rand(s), 0.0) - shift

    return generate_batch


def test_rescale_after_mask():
    for scale, shift, shown in ((2.0, 1.0, "-1"), (1.0, 0.5, "-0.5")):
        model = _cv(generate_batch=_rescaled_after_mask(scale, shift))
        err = assert_fails(C.test_computation_generate_batch, model, "shifted_after_mask")
        assert f"absent entries are all {shown} instead of 0" in err.hint and "absence rate 1 - p" in err.message


def test_no_mask_keeps_both_causes():
    def generate_batch(self, n):  # the mask picks between v and -v: no constant, so the generic causes stay
        s = _shape(self, n)
        v = 2 * torch.rand(s) - 1
        return torch.where(torch.rand(s) < self.feature_probability, v, -v)

    err = assert_fails(C.test_computation_generate_batch, _cv(generate_batch=generate_batch), "always_present")
    assert "where(present, v, -v)" in err.hint and "shift or rescale applied after the mask" in err.hint
