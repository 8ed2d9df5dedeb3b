"""Proofs for part 5 after the fresh27 measurement: a forward that returns its outputs in another order (acts_post
and h_reconstructed swapped) is named as outputs returned in a different order (shapes d_sae = 7 and d_in = 4 tell
them apart), and resample_advanced's live encoder scale taken as the Frobenius norm of the whole live block (not
the mean column norm) is named."""

from __future__ import annotations

import inspect
import textwrap

import solutions.part5_toy_saes as P
import tests.part5_toy_saes as checks
from tests.proving import assert_fails


class _Swapped(P.ToySAE):
    def forward(self, h):
        loss_dict, loss, acts, h_rec = P.ToySAE.forward(self, h)
        return loss_dict, loss, h_rec, acts


def test_swapped_outputs_are_named_as_an_order():
    failure = assert_fails(checks.test_forward, _Swapped, "outputs_order")
    assert "3rd output has the shape of h_reconstructed" in failure.message
    assert "4th output has the shape of acts_post" in failure.message
    assert "(loss_dict, loss, acts_post, h_reconstructed)" in failure.hint


def test_frobenius_live_scale_is_named():
    source = textwrap.dedent(inspect.getsource(P.resample_advanced))
    old = "sae.W_enc[inst, :, ~dead[inst]].norm(dim=0)"
    assert old in source
    namespace = dict(vars(P))
    exec(source.replace(old, "sae.W_enc[inst, :, ~dead[inst]].norm()"), namespace)
    failure = assert_fails(checks.test_resample_advanced, namespace["resample_advanced"], "enc_stat")
    assert "Frobenius norm of the whole live block" in failure.message
