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


# fresh17: absent entries kept non-zero, F.dropout's rescaling, normalised weights, one-sided and Huber losses
def comp_gen_absent_negated(self, n):
    shape = (n, self.cfg.n_inst, self.cfg.n_features)
    v = 2 * torch.rand(shape) - 1
    return torch.where(torch.rand(shape) < self.feature_probability, v, -v)


def comp_gen_dropout(self, n):
    shape = (n, self.cfg.n_inst, self.cfg.n_features)
    return F.dropout(2 * torch.rand(shape) - 1, p=1 - self.feature_probability.mean().item(), training=True)


def comp_normalised_rows(self, features):
    h = F.relu(einops.einsum(features, F.normalize(self.W1, dim=-1), DOWN))
    return F.relu(einops.einsum(h, self.W2, "... inst d_hidden, inst feats d_hidden -> ... inst feats") + self.b_final)


def comp_normalised_w2(self, features):
    h = F.relu(einops.einsum(features, self.W1, DOWN))
    W2 = F.normalize(self.W2, dim=-2)
    return F.relu(einops.einsum(h, W2, "... inst d_hidden, inst feats d_hidden -> ... inst feats") + self.b_final)


def loss_under_only(self, out, batch):
    return (self.importance * (batch.abs() - out).clamp(min=0) ** 2).mean((0, 2)).sum()


def loss_over_only(self, out, batch):
    return (self.importance * (out - batch.abs()).clamp(min=0) ** 2).mean((0, 2)).sum()


def loss_huber(self, out, batch):
    return (self.importance * F.smooth_l1_loss(out, batch.abs(), reduction="none")).mean((0, 2)).sum()


def test_part2_fresh17_generate_batch():
    model = _sub(NeuronComputationModel, generate_batch=comp_gen_absent_negated)
    err = assert_fails(checks2.test_computation_generate_batch, model, "always_present")
    assert "absent entries are not zero" in err.hint and "where(present, v, -v)" in err.hint
    model = _sub(NeuronComputationModel, generate_batch=comp_gen_dropout)
    err = assert_fails(checks2.test_computation_generate_batch, model, "dropout_rescaled")
    assert "F.dropout" in err.hint and "one rate" in err.hint


def test_part2_fresh17_forward_and_loss():
    for forward in (comp_normalised_rows, comp_normalised_w2):
        model = _sub(NeuronComputationModel, forward=forward)
        err = assert_fails(checks2.test_computation_forward, model, "weights_normalised")
        assert "normalised" in err.hint
    for loss in (loss_under_only, loss_over_only):
        model = _sub(NeuronComputationModel, calculate_loss=loss)
        assert_fails(checks2.test_computation_calculate_loss, model, "one_sided_error")
    model = _sub(NeuronComputationModel, calculate_loss=loss_huber)
    err = assert_fails(checks2.test_computation_calculate_loss, model, "huber_loss")
    assert "Huber" in err.hint
