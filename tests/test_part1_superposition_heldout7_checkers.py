"""Proofs for part 1's checks on generic inputs and the relations that name what no catalogue lists: the forward pass
and the loss with the model's feature_probability (never 1 in the checks) where it has no place, a ReLU on W itself,
the loss with other reductions or a square root (named from its value and its gradient), and the combined batch
whose block probabilities were sliced along the instance axis."""

from __future__ import annotations

import einops
import pytest
import torch
import torch.nn.functional as F

import tests.part1_superposition as p1
from solutions.part1_superposition import CorrelatedToyModel, ToyModel
from tests.proving import assert_fails

DOWN = "... inst feats, inst d_hidden feats -> ... inst d_hidden"
UP = "... inst d_hidden, inst d_hidden feats -> ... inst feats"


def _sub(base, **methods) -> type:
    return type("Variant", (base,), methods)


def _two_layer(x, W, b):
    return F.relu(einops.einsum(einops.einsum(x, W, DOWN), W, UP) + b)


def forward_relu_w(self, x):
    return _two_layer(x, F.relu(self.W), self.b_final)


def forward_times_p(self, x):
    return _two_layer(x * self.feature_probability, self.W, self.b_final)


def forward_gram(self, x):  # correct
    return F.relu(torch.einsum("...kf,kgf->...kg", x, self.W.mT @ self.W) + self.b_final)


def _err(self, out, batch):
    return self.importance * (batch - out) ** 2


LOSSES = {
    "loss_weight_factor": [
        lambda self, out, batch: (self.feature_probability * _err(self, out, batch)).mean((0, 2)).sum(),
        lambda self, out, batch: ((1 - self.feature_probability) * _err(self, out, batch)).mean((0, 2)).sum(),
        # the gradient names the table when the value is off by a constant too
        lambda self, out, batch: (self.feature_probability * _err(self, out, batch)).mean((0, 2)).sum() + 0.25,
    ],
    "loss_reduction": [
        lambda self, out, batch: einops.reduce(_err(self, out, batch), "b i f -> i", "max").sum(),
        lambda self, out, batch: (self.importance.sqrt() * (batch - out)).norm(dim=-1).mean(0).sum(),
        lambda self, out, batch: _err(self, out, batch).median(0).values.mean(-1).sum(),
        lambda self, out, batch: _err(self, out, batch).mean((0, 2)).amax(),
    ],
    "root": [lambda self, out, batch: _err(self, out, batch).mean((0, 2)).sqrt().sum()],  # named by the catalogue
}


@pytest.mark.parametrize(("code", "index"), [(c, i) for c, fs in LOSSES.items() for i in range(len(fs))])
def test_loss_named(code, index):
    assert_fails(p1.test_calculate_loss, _sub(ToyModel, calculate_loss=LOSSES[code][index]), code)


def test_loss_reduction_hint_names_the_norm():
    failure = assert_fails(
        p1.test_calculate_loss, _sub(ToyModel, calculate_loss=LOSSES["loss_reduction"][1]), "loss_reduction"
    )
    assert "square root after the sum over `feats`" in failure.hint and "√(Σ_feats" in failure.hint


def test_loss_correct_variants_pass():
    nanmean = lambda self, out, batch: torch.nanmean(self.importance * (out - batch).square(), dim=(0, 2)).sum()
    p1.test_calculate_loss(_sub(ToyModel, calculate_loss=nanmean), device="cpu")


def test_forward_named():
    assert_fails(p1.test_forward, _sub(ToyModel, forward=forward_relu_w), "relu_on_weights")
    assert_fails(p1.test_forward, _sub(ToyModel, forward=forward_times_p), "forward_feature_probability")
    p1.test_forward(_sub(ToyModel, forward=forward_gram), device="cpu")


def _combined(step_instances: bool):
    def generate_batch(self, n):
        nc, na = self.cfg.n_correlated_pairs, self.cfg.n_anticorrelated_pairs
        p, sa, su = self.feature_probability, 2 * nc, 2 * (nc + na)
        corr = p[:, :sa][::2] if step_instances else p[:1, :sa:2]
        return torch.cat(
            [
                self.generate_correlated_features(n, corr),
                self.generate_anticorrelated_features(n, p[:, sa:su:2]),
                self.generate_uncorrelated_features(n, p[:, su:]),
            ],
            -1,
        )

    return generate_batch


def test_combined_p_sliced_along_instances():
    failure = assert_fails(
        p1.test_generate_combined_batch, _sub(CorrelatedToyModel, generate_batch=_combined(True)), "p_sliced_instances"
    )
    assert "2 instances where the model has n_inst = 3: what a step ::2" in failure.hint
    failure = assert_fails(
        p1.test_generate_combined_batch, _sub(CorrelatedToyModel, generate_batch=_combined(False)), "p_sliced_instances"
    )
    assert "1 instance where" in failure.hint and "step" not in failure.hint.split(".")[0]


@pytest.mark.parametrize("method", p1.GENERATORS)
def test_generator_values_scaled_by_importance(method):  # the checks' models hold importances other than 1
    base = getattr(CorrelatedToyModel, method)
    scaled = lambda self, n, p: base(self, n, p) * self.importance
    assert_fails(getattr(p1, f"test_{method}"), _sub(CorrelatedToyModel, **{method: scaled}), "values_depend_on_cell")


def test_combined_scaled_by_importance():
    scaled = lambda self, n: CorrelatedToyModel.generate_batch(self, n) * self.importance
    cls = _sub(CorrelatedToyModel, generate_batch=scaled)
    assert_fails(p1.test_generate_combined_batch, cls, "values_depend_on_cell")
