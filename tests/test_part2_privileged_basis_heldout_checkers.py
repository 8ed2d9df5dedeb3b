"""Proofs for part 2's diagnoses of held-out mistakes: the hidden nonlinearity read off a one-feature model, the
gradients reaching the parameters, presence rates that are an affine function of p, and a loss target reduced
over the features."""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import tests.part2_privileged_basis as checks
from solutions.part2_privileged_basis import NeuronComputationModel, NeuronModel
from tests.proving import assert_fails, assert_passes


def neuron(**methods) -> type:
    return type("NeuronVariant", (NeuronModel,), methods)


def computation(**methods) -> type:
    return type("ComputationVariant", (NeuronComputationModel,), methods)


def _down(x, W):
    return einops.einsum(x, W, "... i f, i d f -> ... i d")


def _up(h, W):
    return einops.einsum(h, W, "... i d, i d f -> ... i f")


def neuron_softplus(self, x):
    return F.relu(_up(F.softplus(_down(x, self.W)), self.W) + self.b_final)


def neuron_mask(self, x):
    return F.relu(_up((_down(x, self.W) > 0).float(), self.W) + self.b_final)


def neuron_detached_hidden(self, x):
    return F.relu(_up(F.relu(_down(x, self.W)).detach(), self.W) + self.b_final)


def neuron_where(self, x):
    h = _down(x, self.W)
    h = h * (h > 0)
    pre = _up(h, self.W) + self.b_final
    return torch.where(pre > 0, pre, 0.0)


def neuron_clamped(self, x):
    return torch.clamp(_up(F.relu(_down(x, self.W)), self.W) + self.b_final, 0, 1)


def test_neuron_forward_held_out():
    assert_passes(checks.test_neuron_forward, neuron(forward=neuron_where))
    assert_fails(checks.test_neuron_forward, neuron(forward=neuron_softplus), "hidden_nonlinearity")
    assert_fails(checks.test_neuron_forward, neuron(forward=neuron_mask), "hidden_nonlinearity")
    assert_fails(checks.test_neuron_forward, neuron(forward=neuron_detached_hidden), "param_gradient")
    assert_fails(checks.test_neuron_forward, neuron(forward=neuron_clamped), "output_capped")


def computation_detached_W2(self, x):
    h = F.relu(_down(x, self.W1))
    return F.relu(einops.einsum(h, self.W2.data, "... i d, i f d -> ... i f") + self.b_final)


def test_computation_forward_held_out():
    assert_fails(checks.test_computation_forward, computation(forward=computation_detached_W2), "no_param_grad")


def batch_signed_presence(self, n):
    s = (n, self.cfg.n_inst, self.cfg.n_features)
    return torch.where(2 * torch.rand(s) - 1 < self.feature_probability, 2 * torch.rand(s) - 1, 0.0)


def test_generate_batch_held_out():
    assert_fails(
        checks.test_computation_generate_batch, computation(generate_batch=batch_signed_presence), "presence_affine"
    )


def loss_norm_target(self, out, batch):
    return (self.importance * (batch.norm(dim=-1, keepdim=True) - out) ** 2).mean((0, 2)).sum()


def test_loss_held_out():
    assert_fails(checks.test_computation_calculate_loss, computation(calculate_loss=loss_norm_target), "target_reduced")


def batch_importance_presence(self, n):
    s = (n, self.cfg.n_inst, self.cfg.n_features)
    return torch.where(torch.rand(s) < self.importance, 2 * torch.rand(s) - 1, 0.0)


def batch_randint_sign(self, n):
    s = (n, self.cfg.n_inst, self.cfg.n_features)
    return torch.where(torch.rand(s) < self.feature_probability, torch.rand(s) * torch.randint(-1, 2, s), 0.0)


def test_generate_batch_fresh2():
    assert_fails(
        checks.test_computation_generate_batch,
        computation(generate_batch=batch_importance_presence),
        "importance_as_probability",
    )
    err = assert_fails(
        checks.test_computation_generate_batch, computation(generate_batch=batch_randint_sign), "presence_fraction"
    )
    assert "randint(-1, 2)" in err.hint


def neuron_dropout(self, x):
    return F.relu(_up(F.dropout(F.relu(_down(x, self.W)), 0.1), self.W) + self.b_final)


def neuron_relu_before_bias(self, x):
    return F.relu(F.relu(_up(F.relu(_down(x, self.W)), self.W)) + self.b_final)


def computation_rescaled_input(self, x):
    h = F.relu(einops.einsum(2 * x - 1, self.W1, "... i f, i d f -> ... i d"))
    return F.relu(einops.einsum(h, self.W2, "... i d, i f d -> ... i f") + self.b_final)


def batch_sign_per_instance(self, n):
    s = (n, self.cfg.n_inst, self.cfg.n_features)
    sign = torch.tensor([[1.0], [-1.0], [1.0]])  # one sign per instance (both signs occur)
    return torch.where(torch.rand(s) < self.feature_probability, sign * torch.rand(s), 0.0)


def test_fresh3_forward_and_generator():
    assert_fails(checks.test_neuron_forward, neuron(forward=neuron_dropout), "forward_random")
    assert_fails(checks.test_neuron_forward, neuron(forward=neuron_relu_before_bias), "relu_before_bias")
    assert_fails(checks.test_computation_forward, computation(forward=computation_rescaled_input), "input_transformed")
    assert_fails(
        checks.test_computation_generate_batch, computation(generate_batch=batch_sign_per_instance), "sign_shared"
    )


# fresh4: a loss returned as a Python number, and operands whose axes met, named by the check's sizes
def loss_item(self, out, batch):
    return (self.importance * (batch.abs() - out) ** 2).mean((0, 2)).sum().item()


def loss_importance_unsqueezed(self, out, batch):
    return (self.importance.unsqueeze(1) * (batch.abs() - out) ** 2).mean((0, 2)).sum()


def test_fresh4_loss_mistakes_are_named():
    err = assert_fails(checks.test_computation_calculate_loss, computation(calculate_loss=loss_item), "not_tensor")
    assert err.hint and ".item()" in err.hint
    impl = computation(calculate_loss=loss_importance_unsqueezed)
    err = assert_fails(checks.test_computation_calculate_loss, impl, "axes_met")
    assert "`inst` axis (size 3)" in err.hint and "`batch` axis (size 8)" in err.hint


def batch_forgot_minus_one(self, n):
    s = (n, self.cfg.n_inst, self.cfg.n_features)
    return torch.where(torch.rand(s) < self.feature_probability, 2 * torch.rand(s), 0.0)


def test_generate_batch_fresh5_shifted_values():
    """U[0, 2] where U[-1, 1] was asked: the observed law and its shift are named, not a missing factor."""
    err = assert_fails(
        checks.test_computation_generate_batch, computation(generate_batch=batch_forgot_minus_one), "values_shifted"
    )
    assert "U[0, 2]" in err.hint and "shifted by +1" in err.hint


def computation_residual(self, x):
    h = F.relu(_down(x, self.W1))
    return F.relu(einops.einsum(h, self.W2, "... i d, i f d -> ... i f") + x + self.b_final)


def computation_unit_norm_batch(self, n):
    shape = (n, *self.feature_probability.shape)
    x = torch.where(torch.rand(shape) < self.feature_probability, 2 * torch.rand(shape) - 1, 0.0)
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def test_fresh6_residual_and_normalised_examples():
    """A residual + x before the output ReLU is named (not a hidden nonlinearity); examples normalised to unit norm
    are named from the per-example norms (not as values clamped from randn)."""
    assert_fails(checks.test_computation_forward, computation(forward=computation_residual), "residual")
    gen = computation(generate_batch=computation_unit_norm_batch)
    assert_fails(checks.test_computation_generate_batch, gen, "normalised_examples")


# fresh7: an SAE-style pre-bias on the input, two independent sign coins, |out| in the loss
def computation_pre_bias(self, x):
    h = F.relu(einops.einsum(x - self.b_final, self.W1, "... i f, i d f -> ... i d"))
    return F.relu(einops.einsum(h, self.W2, "... i d, i f d -> ... i f") + self.b_final)


def gen_two_sign_coins(self, n):
    s, p = (n, self.cfg.n_inst, self.cfg.n_features), self.feature_probability
    pos = torch.where(torch.rand(s) < p / 2, torch.rand(s), 0.0)
    return pos + torch.where(torch.rand(s) < p / 2, -torch.rand(s), 0.0)


def loss_abs_out(self, out, batch):
    return (self.importance * (batch.abs() - out.abs()) ** 2).mean((0, 2)).sum()


def loss_relu_out(self, out, batch):
    return (self.importance * (batch.abs() - F.relu(out)) ** 2).mean((0, 2)).sum()


def test_fresh7_mistakes_are_named():
    err = assert_fails(checks.test_computation_forward, computation(forward=computation_pre_bias), "bias_on_input")
    assert "x - b_final" in err.hint
    err = assert_fails(
        checks.test_computation_generate_batch, computation(generate_batch=gen_two_sign_coins), "sign_coins_independent"
    )
    assert "p - p²/4" in err.hint
    err = assert_fails(
        checks.test_computation_calculate_loss, computation(calculate_loss=loss_abs_out), "out_transformed"
    )
    assert "|out|" in err.hint
    err = assert_fails(
        checks.test_computation_calculate_loss, computation(calculate_loss=loss_relu_out), "out_transformed"
    )
    assert "ReLU(out)" in err.hint


# fresh8: a hidden threshold above 0, one sign per example, values bounded by p, a loss that ignores `out`.
def neuron_threshold(self, x):
    h = F.threshold(_down(x, self.W), 0.1, 0.0)
    return F.relu(_up(h, self.W) + self.b_final)


def batch_sign_per_example(self, n):
    s = (n, self.cfg.n_inst, self.cfg.n_features)
    sign = torch.where(torch.rand(n, 1, 1) < 0.5, -1.0, 1.0)
    return torch.where(torch.rand(s) < self.feature_probability, torch.rand(s) * sign, 0.0)


def batch_values_bounded_by_p(self, n):
    v = 2 * torch.rand(n, self.cfg.n_inst, self.cfg.n_features) - 1
    return torch.where(v.abs() < self.feature_probability, v, 0.0)


def loss_recomputed(self, out, batch):
    return (self.importance * (batch.abs() - self(batch)) ** 2).mean((0, 2)).sum()


def test_fresh8_part2():
    assert_fails(checks.test_neuron_forward, neuron(forward=neuron_threshold), "hidden_nonlinearity")
    gen = checks.test_computation_generate_batch
    assert_fails(gen, computation(generate_batch=batch_sign_per_example), "sign_shared_in_example")
    assert_fails(gen, computation(generate_batch=batch_values_bounded_by_p), "values_reuse_mask")
    assert_fails(checks.test_computation_calculate_loss, computation(calculate_loss=loss_recomputed), "ignores_out")
