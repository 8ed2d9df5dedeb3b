"""Proofs for part 7 after the fresh28 measurement: basis_alignment computed once on W pooled over the instances
(W.mean(0)) and given to every instance is named; a bare .squeeze() after keepdim, which drops the inst axis when
there is one instance, is caught by a call with one instance (and one with one feature)."""

from __future__ import annotations

import torch

import tests.part7_open_problems as checks
from tests.proving import assert_fails, assert_passes


def _ratio(W, dim):
    norm = W.norm(dim=dim, keepdim=True)
    return torch.where(norm > 0, W.abs().amax(dim, keepdim=True) / norm.clamp(min=1e-12), 0.0)


def test_alignment_of_instance_mean_is_named():
    def pooled(W):
        return _ratio(W.mean(0), 0)[0].expand(W.shape[0], -1)

    failure = assert_fails(checks.test_basis_alignment, pooled, "instances_pooled")
    assert "W.mean(0)" in failure.message


def test_alignment_bare_squeeze_is_named():
    failure = assert_fails(checks.test_basis_alignment, lambda W: _ratio(W, 1).squeeze(), "squeezed")
    assert "one instance" in failure.message and ".squeeze(1)" in failure.hint


def test_alignment_squeeze_of_the_neuron_axis_passes():
    assert_passes(checks.test_basis_alignment, lambda W: _ratio(W, 1).squeeze(1))
