"""Proofs for part 2's contraction slips and loss placements: an axis spelled differently in an einsum's two inputs
(each input summed on its own), the ReLU applied to each product term before the sum, in either layer of either
model; the importance multiplying only the output inside the square; I · |x| - out² (parentheses left out)."""

from __future__ import annotations

import einops
import pytest
import torch.nn.functional as F

import tests.part2_privileged_basis as checks2
from solutions.part2_privileged_basis import NeuronComputationModel, NeuronModel
from tests.proving import assert_fails

DOWN = "... inst feats, inst d_hidden feats -> ... inst d_hidden"
UP = "... inst d_hidden, inst d_hidden feats -> ... inst feats"
UP2 = "... inst d_hidden, inst feats d_hidden -> ... inst feats"


def _sub(base, **methods) -> type:
    return type("Variant", (base,), methods)


def comp_typo_write(self, x):
    h = F.relu(einops.einsum(x, self.W1, DOWN))
    return F.relu(einops.einsum(h, self.W2, "... inst d, inst feats d_hidden -> ... inst feats") + self.b_final)


def comp_typo_read(self, x):
    h = F.relu(einops.einsum(x, self.W1, "... inst f, inst d_hidden feats -> ... inst d_hidden"))
    return F.relu(einops.einsum(h, self.W2, UP2) + self.b_final)


def comp_per_term_read(self, x):
    h = F.relu(x[..., None, :] * self.W1).sum(-1)
    return F.relu(einops.einsum(h, self.W2, UP2) + self.b_final)


def comp_per_term_write(self, x):
    h = F.relu(einops.einsum(x, self.W1, DOWN))
    return F.relu(F.relu(h[..., None, :] * self.W2).sum(-1) + self.b_final)


def neuron_typo_write(self, x):
    h = F.relu(einops.einsum(x, self.W, DOWN))
    return F.relu(einops.einsum(h, self.W, "... inst d, inst d_hidden feats -> ... inst feats") + self.b_final)


def neuron_per_term_read(self, x):
    h = F.relu(x[..., None, :] * self.W).sum(-1)
    return F.relu(einops.einsum(h, self.W, UP) + self.b_final)


def test_axis_name_mismatch_named_per_layer():
    err = assert_fails(
        checks2.test_computation_forward, _sub(NeuronComputationModel, forward=comp_typo_write), "axis_name_mismatch"
    )
    assert "`d_hidden`" in err.hint and "output einsum" in err.hint and "W2[f, d]" in err.hint
    err = assert_fails(
        checks2.test_computation_forward, _sub(NeuronComputationModel, forward=comp_typo_read), "axis_name_mismatch"
    )
    assert "`feats`" in err.hint and "hidden-layer" in err.hint and "W1[d, f]" in err.hint
    err = assert_fails(checks2.test_neuron_forward, _sub(NeuronModel, forward=neuron_typo_write), "axis_name_mismatch")
    assert "Σ_d W[d, f] h_d" in err.hint


def test_relu_per_term_named_per_layer():
    err = assert_fails(
        checks2.test_computation_forward, _sub(NeuronComputationModel, forward=comp_per_term_read), "relu_per_term"
    )
    assert "over features" in err.hint and "W1" in err.hint
    err = assert_fails(
        checks2.test_computation_forward, _sub(NeuronComputationModel, forward=comp_per_term_write), "relu_per_term"
    )
    assert "hidden neurons" in err.hint
    err = assert_fails(checks2.test_neuron_forward, _sub(NeuronModel, forward=neuron_per_term_read), "relu_per_term")
    assert "relu(x[..., None, :] * W)" in err.hint


def loss_importance_on_out(self, out, batch):
    return einops.reduce((batch.abs() - self.importance * out) ** 2, "b i f -> i", "mean").sum()


def loss_precedence(self, out, batch):
    return (self.importance * batch.abs() - out**2).mean((0, 2)).sum()


def test_loss_importance_placement_named():
    err = assert_fails(
        checks2.test_computation_calculate_loss,
        _sub(NeuronComputationModel, calculate_loss=loss_importance_on_out),
        "importance_on_output",
    )
    assert "(|batch| - I · out)²" in err.hint
    err = assert_fails(
        checks2.test_computation_calculate_loss,
        _sub(NeuronComputationModel, calculate_loss=loss_precedence),
        "precedence",
    )
    assert "parentheses" in err.hint


# fresh23: the mean of the signed difference taken before squaring (over batch, feats or both, a mean or a sum)
@pytest.mark.parametrize(
    "reduce, over",
    [
        (lambda d: d.mean(0), "`batch`"),
        (lambda d: d.mean(-1, keepdim=True), "`feats`"),
        (lambda d: d.sum(0), "`batch`"),
        (lambda d: d.mean((0, 2), keepdim=True), "`batch` and `feats`"),
    ],
)
def test_computation_loss_square_of_mean(reduce, over):
    def calculate_loss(self, out, batch):
        d = reduce(batch.abs() - out)
        sq = self.importance * d**2  # broadcast back over what was reduced
        return sq.reshape(-1, *sq.shape[-2:]).mean(0).mean(-1).sum()

    failure = assert_fails(
        checks2.test_computation_calculate_loss,
        _sub(NeuronComputationModel, calculate_loss=calculate_loss),
        "square_of_mean",
    )
    assert over in failure.hint and "square of the mean" in failure.hint
