"""Proofs for part 2's diagnoses of the fresh9 held-out mistakes: the importance summed out of the loss's mean, one
uniform giving sign and size, values scaled by the importance, and an input scale that is also an output-term scale;
fresh13: the output clamped with max=0, a hidden bias taken from b_final (the bias hint lists its causes), a first
product that keeps `feats`; fresh14: a batch drawn without its batch axis."""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import tests.part2_privileged_basis as checks2
from solutions.part1_superposition import ToyModel
from solutions.part2_privileged_basis import NeuronComputationModel, NeuronModel
from tests.proving import assert_fails


def comp_variant(**methods) -> type:
    return type("ComputationVariant", (NeuronComputationModel,), methods)


def _shape(self, n):
    return (n, self.cfg.n_inst, self.cfg.n_features)


def comp_loss_importance_summed(self, out, batch):
    return ((batch.abs() - out) ** 2).mean((0, 2)).mul(self.importance.sum(-1)).sum()


def comp_forward_scaled_output(self, x):
    h = F.relu(einops.einsum(x, self.W1, "... i f, i d f -> ... i d"))
    out = einops.einsum(h, self.W2, "... i d, i f d -> ... i f") / self.cfg.d_hidden**0.5
    return F.relu(out + self.b_final)


def comp_gen_one_uniform(self, n):
    s = _shape(self, n)
    v = torch.rand(s)
    return torch.where(torch.rand(s) < self.feature_probability, torch.where(v < 0.5, -v, v), 0.0)


def comp_gen_times_importance(self, n):
    s = _shape(self, n)
    return torch.where(torch.rand(s) < self.feature_probability, (2 * torch.rand(s) - 1) * self.importance, 0.0)


def test_computation_held_out():
    err = assert_fails(
        checks2.test_computation_forward, comp_variant(forward=comp_forward_scaled_output), "input_transformed"
    )
    assert "1/√d_hidden = 1/√4" in err.hint and "output weights term" in err.hint
    err = assert_fails(
        checks2.test_computation_generate_batch, comp_variant(generate_batch=comp_gen_one_uniform), "value_distribution"
    )
    assert "where(v < 0.5, -v, v)" in err.hint
    model = comp_variant(generate_batch=comp_gen_times_importance)
    assert_fails(checks2.test_computation_generate_batch, model, "values_scaled_by_table")


def test_computation_loss_importance_summed():
    model = comp_variant(calculate_loss=comp_loss_importance_summed)
    assert_fails(checks2.test_computation_calculate_loss, model, "importance_summed")


def comp_forward_output_sign(self, x):
    h = F.relu(einops.einsum(x, self.W1, "... i f, i d f -> ... i d"))
    return F.relu(self.b_final - einops.einsum(h, self.W2, "... i d, i f d -> ... i f"))


def test_part2_heldout11_output_sign():
    err = assert_fails(
        checks2.test_computation_forward, comp_variant(forward=comp_forward_output_sign), "output_term_sign"
    )
    assert "minus sign" in err.hint and "not a ReLU" not in err.hint


# fresh12: part 1's generate_batch reached through super() (it reads self.W), a sign drawn with randint(-1, 1), a
# presence draw on a 0.01 grid, boolean-mask indexing, and the batch sum divided by B - 1.
def comp_gen_super(self, n):
    x = super(NeuronComputationModel, self).generate_batch(n)
    return x * (torch.randint(0, 2, x.shape) * 2 - 1)


def comp_gen_randint_sign(self, n):
    s = _shape(self, n)
    x = torch.where(torch.rand(s) < self.feature_probability, torch.rand(s), 0.0)
    return x * torch.randint(-1, 1, s)


def comp_gen_grid(self, n):
    s = _shape(self, n)
    return torch.where(torch.randint(0, 100, s) / 100 < self.feature_probability, 2 * torch.rand(s) - 1, 0.0)


def comp_gen_masked(self, n):
    s = _shape(self, n)
    return (2 * torch.rand(s) - 1)[torch.rand(s) < self.feature_probability]


def comp_loss_bessel(self, out, batch):
    return ((self.importance * (batch.abs() - out) ** 2).sum(0) / (batch.shape[0] - 1)).mean(-1).sum()


def comp_loss_precedence(self, out, batch):
    return (self.importance * (batch.abs() - out**2)).mean((0, 2)).sum()


def test_part2_heldout12():
    assert issubclass(NeuronComputationModel, ToyModel)
    gen = checks2.test_computation_generate_batch
    err = assert_fails(gen, comp_variant(generate_batch=comp_gen_super), "part1_generate_batch")
    assert "has no W" in err.hint
    err = assert_fails(gen, comp_variant(generate_batch=comp_gen_randint_sign), "values_all_negative")
    assert "randint(-1, 1)" in err.hint
    assert_fails(gen, comp_variant(generate_batch=comp_gen_grid), "presence_grid")
    assert_fails(gen, comp_variant(generate_batch=comp_gen_masked), "boolean_mask_flat")
    loss = checks2.test_computation_calculate_loss
    err = assert_fails(loss, comp_variant(calculate_loss=comp_loss_bessel), "count_minus_one")
    assert "8/7" in err.hint and "cfg.n_features" not in err.hint
    assert_fails(loss, comp_variant(calculate_loss=comp_loss_precedence), "square_precedence")


# fresh13
def neuron_clamp_max(self, features):
    h = F.relu(einops.einsum(features, self.W, "... i f, i d f -> ... i d"))
    return (einops.einsum(h, self.W, "... i d, i d f -> ... i f") + self.b_final).clamp(max=0)


def neuron_keeps_feats(self, features):
    h = F.relu(einops.einsum(features, self.W, "... i f, i d f -> ... i f"))
    return F.relu(einops.einsum(h, self.W, "... i f, i d f -> ... i f") + self.b_final)


def comp_hidden_bias(self, x):
    d = self.cfg.d_hidden
    h = F.relu(einops.einsum(x, self.W1, "... i f, i d f -> ... i d") + self.b_final[:, :d])
    return F.relu(einops.einsum(h, self.W2, "... i d, i f d -> ... i f"))


def test_part2_heldout13():
    variant = type("NeuronVariant", (NeuronModel,), {"forward": neuron_clamp_max})
    err = assert_fails(checks2.test_neuron_forward, variant, "output_negative_part")
    assert "clamp(max=0)" in err.hint
    variant = type("NeuronVariant", (NeuronModel,), {"forward": neuron_keeps_feats})
    assert_fails(checks2.test_neuron_forward, variant, "only_own_feature")
    err = assert_fails(checks2.test_computation_forward, comp_variant(forward=comp_hidden_bias), "bias_term")
    assert "output nonlinearity" in err.hint  # where to look; no cause is claimed that wasn't read back


def comp_batch_no_batch_axis(self, n):
    p = self.feature_probability
    return torch.where(torch.rand(p.shape) < p, 2 * torch.rand(p.shape) - 1, 0.0)


def test_part2_heldout14_no_batch_axis():
    variant = comp_variant(generate_batch=comp_batch_no_batch_axis)
    err = assert_fails(checks2.test_computation_generate_batch, variant, "no_batch_axis")
    assert "drawn without the batch axis" in err.hint
