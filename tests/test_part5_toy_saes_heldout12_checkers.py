"""Proofs for part 5 after the fresh33 measurement: generate_batch repeating one draw over the batch (an .expand or
.repeat of a smaller batch), L_reconstruction as a normalised MSE (divided by ‖h‖²), and resample_advanced reading
the picked examples from another instance of the batch (h[picked, 0])."""

from __future__ import annotations

import inspect
import textwrap

import einops

import solutions.part5_toy_saes as P
import tests.part5_toy_saes as checks
from tests.proving import assert_fails


def _hidden(sae, features):
    return einops.einsum(features, sae.model.W, "batch inst feats, inst d_in feats -> batch inst d_in")


def test_one_draw_expanded():
    class Expanded(P.ToySAE):
        def generate_batch(self, batch_size):
            return _hidden(self, self.model.generate_batch(1).expand(batch_size, -1, -1))

    failure = assert_fails(checks.test_generate_batch, Expanded, "repeated_examples")
    assert "one draw repeated over the batch" in failure.hint
    assert "asked the toy model for 1 example(s)" in failure.message


def test_small_draw_repeated():  # a batch of 8 tiled 8 times: not only a batch of one
    class Tiled(P.ToySAE):
        def generate_batch(self, batch_size):
            return _hidden(self, self.model.generate_batch(batch_size // 8).repeat(8, 1, 1))

    assert_fails(checks.test_generate_batch, Tiled, "repeated_examples")


def test_normalised_mse():
    class Normalised(P.ToySAE):
        def forward(self, h):
            loss_dict, loss, acts, h_rec = P.ToySAE.forward(self, h)
            loss_dict["L_reconstruction"] = (h_rec - h).pow(2).sum(-1) / h.pow(2).sum(-1)
            return loss_dict, loss, acts, h_rec

    failure = assert_fails(checks.test_forward, Normalised, "normalised_mse")
    assert "divided by that example's ‖h‖²" in failure.message


def _from_solution(name: str, old: str, new: str):
    source = textwrap.dedent(inspect.getsource(getattr(P, name)))
    assert old in source
    namespace = dict(vars(P))
    exec(source.replace(old, new), namespace)
    return namespace[name]


def test_picked_from_instance_0():
    old = "directions = h[picked, inst] - sae.b_dec[inst]"
    inst0 = _from_solution("resample_advanced", old, "directions = h[picked, 0] - sae.b_dec[inst]")
    failure = assert_fails(checks.test_resample_advanced, inst0, "other_instance_input")
    assert "instance 0's inputs" in failure.message and "h[picked, inst]" in failure.hint
