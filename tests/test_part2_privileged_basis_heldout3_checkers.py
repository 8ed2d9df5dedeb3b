"""Proofs for part 2's diagnoses of the fresh16 held-out mistakes: an output ReLU6 (the checkers' inputs include large
features, so outputs go far above 6 and a cap shows), a bend of large outputs, and values divided by p."""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import tests.part2_privileged_basis as checks2
from solutions.part2_privileged_basis import NeuronComputationModel, NeuronModel
from tests.proving import assert_fails

DOWN = "... inst feats, inst d_hidden feats -> ... inst d_hidden"
UP = "... inst d_hidden, inst d_hidden feats -> ... inst feats"


def _sub(base, **methods) -> type:
    return type("Variant", (base,), methods)


def neuron_relu6(self, features):
    h = F.relu(einops.einsum(features, self.W, DOWN))
    return F.relu6(einops.einsum(h, self.W, UP) + self.b_final)


def neuron_bent(self, features):
    pre = einops.einsum(F.relu(einops.einsum(features, self.W, DOWN)), self.W, UP) + self.b_final
    return torch.where(pre > 4, 4 + torch.log1p(pre - 4), F.relu(pre))


def comp_relu6(self, features):
    h = F.relu(einops.einsum(features, self.W1, DOWN))
    return F.relu6(einops.einsum(h, self.W2, "... inst d_hidden, inst feats d_hidden -> ... inst feats") + self.b_final)


def comp_gen_divided_by_p(self, n):
    shape = (n, self.cfg.n_inst, self.cfg.n_features)
    present = torch.rand(shape) < self.feature_probability
    return torch.where(present, 2 * torch.rand(shape) - 1, 0.0) / self.feature_probability


def test_part2_fresh16_output_cap():
    err = assert_fails(checks2.test_neuron_forward, _sub(NeuronModel, forward=neuron_relu6), "output_capped")
    assert "clipped at 6" in err.hint
    assert_fails(checks2.test_neuron_forward, _sub(NeuronModel, forward=neuron_bent), "output_nonlinearity_large")
    err = assert_fails(
        checks2.test_computation_forward, _sub(NeuronComputationModel, forward=comp_relu6), "output_capped"
    )
    assert "relu6" in err.hint


def test_part2_fresh16_values_divided_by_p():
    model = _sub(NeuronComputationModel, generate_batch=comp_gen_divided_by_p)
    err = assert_fails(checks2.test_computation_generate_batch, model, "values_scaled_by_table")
    assert "divided by p" in err.hint
