"""Proofs for part 2 after the fresh33 measurement: a product of two draws named (`value_distribution`, its law),
presence against p × importance (`presence_times_importance`), a loss weighted by p too (`loss_weight_factor`, p per
feature in the loss check), the importance applied after nn.MSELoss reduced (`importance_after_reduction`)."""

from __future__ import annotations

import torch

import tests.part2_privileged_basis as C
from solutions.part2_privileged_basis import NeuronComputationModel
from tests.proving import assert_fails


def _cv(**methods):
    return type("CV", (NeuronComputationModel,), methods)


def _shape(self, n):
    return (n, self.cfg.n_inst, self.cfg.n_features)


def test_product_of_draws():
    def generate_batch(self, n):
        s = _shape(self, n)
        return torch.where(torch.rand(s) < self.feature_probability, torch.rand(s), 0.0) * (2 * torch.rand(s) - 1)

    failure = assert_fails(C.test_computation_generate_batch, _cv(generate_batch=generate_batch), "value_distribution")
    assert "product of two uniform draws" in failure.hint


def test_presence_times_importance():
    def generate_batch(self, n):
        s = _shape(self, n)
        return torch.where(torch.rand(s) < self.feature_probability * self.importance, 2 * torch.rand(s) - 1, 0.0)

    assert_fails(C.test_computation_generate_batch, _cv(generate_batch=generate_batch), "presence_times_importance")


def test_loss_weighted_by_probability():
    def calculate_loss(self, out, batch):
        return (self.importance * self.feature_probability * (batch.abs() - out) ** 2).mean((0, 2)).sum()

    assert_fails(C.test_computation_calculate_loss, _cv(calculate_loss=calculate_loss), "loss_weight_factor")


def test_importance_after_reduction():
    def calculate_loss(self, out, batch):
        return torch.nn.MSELoss()(out, batch.abs()) * self.importance

    failure = assert_fails(
        C.test_computation_calculate_loss, _cv(calculate_loss=calculate_loss), "importance_after_reduction"
    )
    assert "nn.MSELoss" in failure.hint
