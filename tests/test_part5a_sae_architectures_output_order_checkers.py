"""Proofs for part 5a after the fresh27 measurement: the shared forward check (`check_sae_forward`) names a forward
that returns acts_post and h_reconstructed swapped as outputs returned in a different order."""

from __future__ import annotations

import solutions.part5a_sae_architectures as A
import tests.part5a_sae_architectures as C
from tests.proving import assert_fails


class _SwappedGated(A.GatedToySAE):
    def forward(self, h):
        loss_dict, loss, acts, h_rec = A.GatedToySAE.forward(self, h)
        return loss_dict, loss, h_rec, acts


class _SwappedJumpReLU(A.JumpReLUToySAE):
    def forward(self, h):
        loss_dict, loss, acts, h_rec = A.JumpReLUToySAE.forward(self, h)
        return loss_dict, loss, h_rec, acts


def test_swapped_gated_outputs_are_named_as_an_order():
    failure = assert_fails(C.test_gated_forward, _SwappedGated, "outputs_order")
    assert "3rd output has the shape of h_reconstructed" in failure.message


def test_swapped_jumprelu_outputs_are_named_as_an_order():
    failure = assert_fails(C.test_jumprelu_forward, _SwappedJumpReLU, "outputs_order")
    assert "4th output has the shape of acts_post" in failure.message
