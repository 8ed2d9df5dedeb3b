"""Proofs for part 1 after held-out round AZ (fresh53).

The loss check reads the weight of every squared error back from the gradient (`part1_superposition_weight_readings`)
and names how the importance was changed:
* a weighted average Σ I·err / Σ I per instance (`importance_weighted_average`);
* the importance divided by its largest entry per instance (`importance_normalised`), or overall (`scale`, named with
  its twin on these inputs, a constant ½ on the loss, since importance.max() is 2);
* the instances combined with a logsumexp (`instances_logsumexp`);
* one feature's importance for all (`importance_one_entry`), a cumsum (`importance_accumulated`);
* one weighted average over everything, Σ I·err / (Σ I · B) (`importance_weighted_average`), a softmax of the
  importance (`importance_softmax`), the importance rolled (`importance_reordered`);
* the squared error divided by the batch variance of the target (`normalised_mse`) or by target² + ε
  (`relative_error`).
The forward check names b_final moved along an axis (`bias_moved`: its instances reversed or averaged), a NaN on the
all-zero probe (`nonfinite_on_zeros`: the input normalised), a bounded hidden layer (`hidden_bounded`: a clamp to
[-1, 1]) W averaged over the instances in both products (`weights_other_instance`), and the input clipped to [0, 1]
(`input_transformed`).
generate_batch names values drawn in float16 (`values_low_precision`).
The round's correct variants (bmm, a precomputed WᵀW, loops, one uniform rescaled for presence and value, the
conditional anticorrelated draw, torch.distributions) pass.
"""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import tests.part1_superposition as checks
from solutions.part1_superposition import CorrelatedToyModel, ToyModel
from tests.proving import assert_fails, assert_passes


def _loss(fn):
    return type("LossV", (ToyModel,), {"calculate_loss": fn})


def _sq(self, out, batch):
    return (batch - out) ** 2


LOSSES = {
    "importance_weighted_average": lambda s, o, b: (
        (s.importance * _sq(s, o, b)).sum((0, 2)) / (s.importance.sum(-1) * b.shape[0])
    ).sum(),
    "importance_normalised": lambda s, o, b: (
        ((s.importance / s.importance.amax(-1, keepdim=True)) * _sq(s, o, b)).mean((0, 2)).sum()
    ),
    "instances_logsumexp": lambda s, o, b: torch.logsumexp((s.importance * _sq(s, o, b)).mean((0, 2)), 0),
    "importance_one_entry": lambda s, o, b: (s.importance[:, :1] * _sq(s, o, b)).mean((0, 2)).sum(),
    "importance_accumulated": lambda s, o, b: (s.importance.cumsum(-1) * _sq(s, o, b)).mean((0, 2)).sum(),
    "normalised_mse": lambda s, o, b: (s.importance * _sq(s, o, b) / b.var(0)).mean((0, 2)).sum(),
    "importance_softmax": lambda s, o, b: (s.importance.softmax(-1) * _sq(s, o, b)).mean((0, 2)).sum(),
    "importance_reordered": lambda s, o, b: (s.importance.roll(1, -1) * _sq(s, o, b)).mean((0, 2)).sum(),
    "relative_error": lambda s, o, b: (s.importance * _sq(s, o, b) / (b**2 + 1e-6)).mean((0, 2)).sum(),
}


def test_importance_changes_named():
    for code, fn in LOSSES.items():
        assert_fails(checks.test_calculate_loss, _loss(fn), code)
    overall = lambda s, o, b: (s.importance * _sq(s, o, b)).sum() / (s.importance.sum() * b.shape[0])
    err = assert_fails(checks.test_calculate_loss, _loss(overall), "importance_weighted_average")
    assert "every instance and feature" in err.hint


def test_importance_over_global_max_named_with_its_twin():
    fn = lambda s, o, b: ((s.importance / s.importance.max()) * _sq(s, o, b)).mean((0, 2)).sum()
    err = assert_fails(checks.test_calculate_loss, _loss(fn), "scale")
    assert "importance.max()" in err.hint and "½" in err.hint


def _fwd(edit_x=lambda s, x: x, edit_w=lambda w: w, edit_h=lambda h: h, edit_b=lambda b: b):
    def forward(self, x):
        W = edit_w(self.W)
        h = edit_h(einops.einsum(edit_x(self, x), W, "... i f, i d f -> ... i d"))
        return F.relu(einops.einsum(h, W, "... i d, i d f -> ... i f") + edit_b(self.b_final))

    return type("FwdV", (ToyModel,), {"forward": forward})


def test_forward_mistakes_named():
    assert_fails(checks.test_forward, _fwd(edit_b=lambda b: b.flip(0)), "bias_moved")
    assert_fails(checks.test_forward, _fwd(edit_b=lambda b: b.mean(0)), "bias_moved")
    assert_fails(checks.test_forward, _fwd(edit_x=lambda s, x: x / x.norm(dim=-1, keepdim=True)), "nonfinite_on_zeros")
    assert_fails(checks.test_forward, _fwd(edit_h=lambda h: h.clamp(-1, 1)), "hidden_bounded")
    mean_w = lambda w: w.mean(0, keepdim=True).expand_as(w)
    assert_fails(checks.test_forward, _fwd(edit_w=mean_w), "weights_other_instance")
    assert_fails(checks.test_forward, _fwd(edit_b=lambda b: b.roll(1, 0)), "bias_moved")
    assert_fails(checks.test_forward, _fwd(edit_h=torch.tanh), "hidden_bounded")
    err = assert_fails(checks.test_forward, _fwd(edit_x=lambda s, x: x.clamp(0, 1)), "input_transformed")
    assert "clamp(0, 1)" in err.hint


class BatchHalf(ToyModel):
    def generate_batch(self, n):
        s = (n, self.cfg.n_inst, self.cfg.n_features)
        v = torch.rand(s, dtype=torch.float16).float()
        return torch.where(torch.rand(s) < self.feature_probability, v, 0.0)


def test_low_precision_values_named():
    assert_fails(checks.test_generate_batch, BatchHalf, "values_low_precision")


class FwdBmm(ToyModel):
    def forward(self, x):
        lead = x.shape[:-2]
        xf = x.reshape(-1, *x.shape[-2:]).transpose(0, 1)
        o = torch.bmm(torch.bmm(xf, self.W.transpose(1, 2)), self.W).transpose(0, 1).reshape(*lead, *x.shape[-2:])
        return torch.clamp(o + self.b_final, min=0)


class FwdGram(ToyModel):
    def forward(self, x):
        gram = self.W.transpose(-1, -2) @ self.W
        return F.relu(torch.einsum("...if,ifg->...ig", x, gram) + self.b_final)


class BatchOneUniform(ToyModel):
    def generate_batch(self, n):
        u = torch.rand(n, self.cfg.n_inst, self.cfg.n_features, device=self.W.device)
        p = self.feature_probability
        return torch.where(u < p, u / p, torch.zeros((), device=u.device))


class BatchDistributions(ToyModel):
    def generate_batch(self, n):
        m = torch.distributions.Bernoulli(probs=self.feature_probability).sample((n,))
        v = torch.distributions.Uniform(0.0, 1.0).sample((n, self.cfg.n_inst, self.cfg.n_features))
        return m * v.to(m.device)


class AntiConditional(CorrelatedToyModel):
    def generate_anticorrelated_features(self, n, p):
        ni, npairs = p.shape
        first = torch.rand(n, ni, npairs, device=p.device) < p
        second = ~first & (torch.rand(n, ni, npairs, device=p.device) < p / (1 - p))
        present = torch.stack([first, second], -1).flatten(-2)
        return present * torch.rand(n, ni, 2 * npairs, device=p.device)


class LossTimesInstances(ToyModel):
    def calculate_loss(self, out, batch):
        return einops.reduce(self.importance * (out - batch).pow(2), "b i f ->", "mean") * batch.shape[1]


def test_correct_variants_pass():
    assert_passes(checks.test_forward, FwdBmm)
    assert_passes(checks.test_forward, FwdGram)
    assert_passes(checks.test_generate_batch, BatchOneUniform)
    assert_passes(checks.test_generate_batch, BatchDistributions)
    assert_passes(checks.test_generate_anticorrelated_features, AntiConditional)
    assert_passes(checks.test_calculate_loss, LossTimesInstances)
