"""Proofs for part 8 after held-out round BB (fresh55).

* leaky hard sigmoids: a backward that edits grad_output in place (grad_output[x > 1] = 0; grad_output[x < 0] *= alpha)
  passed; the checker now calls it with the caller's grad_outputs and with out.sum() (an expanded grad_output, where
  the edit zeroes every entry), `grad_output_in_place`.
* The round's correct variants pass.
"""

from __future__ import annotations

import torch

import tests.part8_parameter_decomposition as checks
from tests.part8_parameter_decomposition_slips import learner_sigmoid
from tests.proving import assert_fails, assert_passes


# ---------------------------------------------------------------- leaky hard sigmoids
def _lower_in_place(x, alpha, g):
    g[x > 1] = 0
    g[x < 0] *= alpha
    return g


def _upper_in_place(x, alpha, g):
    return g.mul_(torch.where(x > 1, alpha, (x >= 0).to(x.dtype)))


def test_sigmoid_backward_editing_grad_output_is_named():
    lower = learner_sigmoid(_lower_in_place)
    failure = assert_fails(checks.test_lower_leaky_hard_sigmoid, lower, "grad_output_in_place")
    assert "grad_output * slope" in failure.hint
    assert_fails(checks.test_upper_leaky_hard_sigmoid, learner_sigmoid(_upper_in_place), "grad_output_in_place")


def test_sigmoid_backward_on_a_clone_passes():
    def lower(x, alpha, g):
        g = g.clone()
        g[x > 1] = 0
        g[x < 0] *= alpha
        return g

    assert_passes(checks.test_lower_leaky_hard_sigmoid, learner_sigmoid(lower))
