"""Proofs for part 1 after held-out round BA (fresh54).

* A presence rate scaled by a constant that the half-normal law also fits (an anticorrelated pair active with 1.5p,
  each feature on at 0.75p ≈ erf(p/√2) on P_PAIRS) is named with both readings (`presence_law`).
* Values clamped at both ends inside their range (rand().clamp(0.05, 0.95)) pile on two atoms: named as a clamp
  (`values_clamped`), not as a narrower draw.
* A floor on p (p.clamp(min=0.01)) shows at p = 0.0011 against that p's own tolerance (`presence_clamped`).
* The loss (`part1_superposition_loss_extras`, shared with part 2): a penalty on out added (`extra_term`: λ·out²,
  λ·|out|),
  the mean divided again by the batch size or n_features (`divided_twice`), ReLU(out) inside the loss
  (`out_transformed`), and an einsum whose instance letter differs between the operands, 'bif,jf->bi', which weights
  each error by the importance summed over instances (`importance_summed`).
* The forward pass (`part1_superposition_forward_extras`): b_final multiplied by importance or feature_probability
  (`forward_importance`, `forward_feature_probability`), the input's instances reordered (x.flip(-2), x.roll(1, -2):
  `instances_mixed`, from the probe part 2 used, now shared), and b_final subtracted after the output ReLU (`bias_term`,
  the zero-input reading now compares -b_final and ReLU(-b_final)).
* Rates that are p's values in the wrong places (`part1_superposition_reorders`): p sorted along the features, and a
  block's slice of p reversed in the combined batch (a permutation with ties: pairs share a probability)
  (`presence_reordered`, with the sort or the reversed span named); an anticorrelated pair's second feature at about
  2p (an interval of the uniform 2p wide) is named with its factor (`presence_probability`).
The round's correct variants pass.
"""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import tests.part1_superposition as checks
from solutions.part1_superposition import CorrelatedToyModel, ToyModel
from tests.proving import assert_fails, assert_passes


def _shape(self, n):
    return (n, self.cfg.n_inst, self.cfg.n_features)


class AntiActiveScaled(CorrelatedToyModel):
    def generate_anticorrelated_features(self, n, p):
        k, m = p.shape
        active = torch.rand(n, k, m, device=p.device) < 1.5 * p
        first = torch.rand(n, k, m, device=p.device) < 0.5
        present = torch.stack([active & first, active & ~first], -1).flatten(-2)
        return present * torch.rand(n, k, 2 * m, device=p.device)


class BatchClampedBothEnds(ToyModel):
    def generate_batch(self, n):
        present = torch.rand(_shape(self, n), device=self.W.device) < self.feature_probability
        return present * torch.rand(_shape(self, n), device=self.W.device).clamp(0.05, 0.95)


class BatchFloorOnP(ToyModel):
    def generate_batch(self, n):
        present = torch.rand(_shape(self, n), device=self.W.device) < self.feature_probability.clamp(min=0.01)
        return present * torch.rand(_shape(self, n), device=self.W.device)


def test_scaled_rate_named_with_the_law_it_matches():
    err = assert_fails(checks.test_generate_anticorrelated_features, AntiActiveScaled, "presence_law")
    assert "0.75·p" in err.hint and "half-normal" in err.hint


def test_values_clamped_both_ends_named():
    err = assert_fails(checks.test_generate_batch, BatchClampedBothEnds, "values_clamped")
    assert "clamp(0.05, 0.95)" in err.hint


def test_probability_floor_named():
    assert_fails(checks.test_generate_batch, BatchFloorOnP, "presence_clamped")


# ---- the round's correct variants
class FwdParams(ToyModel):
    def forward(self, x):
        W, b = self.parameters()  # registration order: W, then b_final
        h = torch.einsum("...if,idf->...id", x, W)
        return torch.maximum(torch.einsum("...id,idf->...if", h, W) + b, torch.zeros((), device=x.device))


class FwdFloat64(ToyModel):
    def forward(self, x):
        W = self.W.double()
        h = einops.einsum(x.double(), W, "... i f, i d f -> ... i d")
        return F.relu(einops.einsum(h, W, "... i d, i d f -> ... i f") + self.b_final.double()).to(x.dtype)


class LossTensordot(ToyModel):
    def calculate_loss(self, out, batch):
        per = (batch - out).pow(2).mean(0)
        return torch.tensordot(per, self.importance, dims=([0, 1], [0, 1])) / batch.shape[-1]


class BatchCompact(ToyModel):
    def generate_batch(self, n):
        present = torch.rand(_shape(self, n), device=self.W.device) < self.feature_probability
        out = torch.zeros(_shape(self, n), device=self.W.device)
        out[present] = torch.rand(int(present.sum()), device=self.W.device)
        return out


class AntiOneValuePerPair(CorrelatedToyModel):
    def generate_anticorrelated_features(self, n, p):
        k, m = p.shape
        active = torch.rand(n, k, m, device=p.device) < 2 * p
        which = torch.randint(0, 2, (n, k, m), device=p.device)
        onehot = F.one_hot(which, 2).bool() & active[..., None]
        return (onehot * torch.rand(n, k, m, 1, device=p.device)).flatten(-2)


class AntiIntervalFromHalf(CorrelatedToyModel):
    def generate_anticorrelated_features(self, n, p):
        k, m = p.shape
        u = torch.rand(n, k, m, device=p.device)
        present = torch.stack([u < p, (u >= 0.5) & (u < 0.5 + p)], -1).flatten(-2)
        return present * torch.rand(n, k, 2 * m, device=p.device)


class CombinedFillReversed(CorrelatedToyModel):
    def generate_batch(self, n):
        nc, na = self.cfg.n_correlated_pairs, self.cfg.n_anticorrelated_pairs
        p = self.feature_probability
        out = torch.empty(n, self.cfg.n_inst, self.cfg.n_features, device=p.device)
        a, b = 2 * nc, 2 * (nc + na)
        out[..., b:] = self.generate_uncorrelated_features(n, p[:, b:])
        out[..., a:b] = self.generate_anticorrelated_features(n, p[:, a:b][:, 0::2])
        out[..., :a] = self.generate_correlated_features(n, p[:, :a][:, 0::2])
        return out


class UncSorted(CorrelatedToyModel):
    def generate_uncorrelated_features(self, n, p):
        ps = p.sort(-1).values
        return (torch.rand(n, *p.shape, device=p.device) < ps) * torch.rand(n, *p.shape, device=p.device)


class CombinedUncReversed(CorrelatedToyModel):
    def generate_batch(self, n):
        nc, na = self.cfg.n_correlated_pairs, self.cfg.n_anticorrelated_pairs
        p = self.feature_probability
        a, b = 2 * nc, 2 * (nc + na)
        blocks = [
            self.generate_correlated_features(n, p[:, 0:a:2]),
            self.generate_anticorrelated_features(n, p[:, a:b:2]),
            self.generate_uncorrelated_features(n, p[:, b:].flip(-1)),
        ]
        return torch.cat(blocks, -1)


class AntiSecondWide(CorrelatedToyModel):
    def generate_anticorrelated_features(self, n, p):
        k, m = p.shape
        u = torch.rand(n, k, m, device=p.device)
        present = torch.stack([u < p, (u > p) & (u < 3 * p)], -1).flatten(-2)
        return present * torch.rand(n, k, 2 * m, device=p.device)


def test_reordered_rates_named():
    err = assert_fails(checks.test_generate_uncorrelated_features, UncSorted, "presence_reordered")
    assert "p.sort(-1)" in err.hint
    err = assert_fails(checks.test_generate_combined_batch, CombinedUncReversed, "presence_reordered")
    assert "reverse order" in err.hint
    err = assert_fails(checks.test_generate_anticorrelated_features, AntiSecondWide, "presence_probability")
    assert "about 2·p" in err.hint


def _fwd(edit_x=lambda s, x: x, edit_b=lambda s: s.b_final, post=None):
    def forward(self, x):
        h = einops.einsum(edit_x(self, x), self.W, "... i f, i d f -> ... i d")
        o = einops.einsum(h, self.W, "... i d, i d f -> ... i f")
        return post(self, o) if post else F.relu(o + edit_b(self))

    return type("FwdV", (ToyModel,), {"forward": forward})


def test_forward_mistakes_named():
    assert_fails(checks.test_forward, _fwd(edit_b=lambda s: s.b_final * s.importance), "forward_importance")
    assert_fails(
        checks.test_forward, _fwd(edit_b=lambda s: s.b_final * s.feature_probability), "forward_feature_probability"
    )
    assert_fails(checks.test_forward, _fwd(edit_x=lambda s, x: x.flip(-2)), "instances_mixed")
    assert_fails(checks.test_forward, _fwd(edit_x=lambda s, x: x.roll(1, -2)), "instances_mixed")
    err = assert_fails(checks.test_forward, _fwd(post=lambda s, o: F.relu(o) - s.b_final), "bias_term")
    assert "-b_final" in err.hint and "no cause" not in err.hint


def _loss(fn):
    return type("LossV", (ToyModel,), {"calculate_loss": fn})


LOSSES = {
    "extra_term": [
        lambda s, o, b: (s.importance * (b - o) ** 2).mean((0, 2)).sum() + 1e-3 * (o**2).mean(),
        lambda s, o, b: (s.importance * (b - o) ** 2).mean((0, 2)).sum() + 1e-2 * o.abs().sum(),
    ],
    "divided_twice": [
        lambda s, o, b: (s.importance * (b - o) ** 2).mean(dim=(0, 2)).sum() / b.shape[0],
        lambda s, o, b: (s.importance * (b - o) ** 2).mean(dim=(0, 2)).sum() / b.shape[-1],
    ],
    "out_transformed": [lambda s, o, b: (s.importance * (b - o.clamp(min=0)) ** 2).mean((0, 2)).sum()],
    "importance_summed": [
        lambda s, o, b: torch.einsum("bif,jf->bi", (b - o) ** 2, s.importance).mean(0).sum() / b.shape[-1]
    ],
}


def test_loss_additions_named():
    for code, fns in LOSSES.items():
        for fn in fns:
            assert_fails(checks.test_calculate_loss, _loss(fn), code)


def test_correct_variants_pass():
    assert_passes(checks.test_forward, FwdParams)
    assert_passes(checks.test_forward, FwdFloat64)
    assert_passes(checks.test_calculate_loss, LossTensordot)
    assert_passes(checks.test_generate_batch, BatchCompact)
    assert_passes(checks.test_generate_anticorrelated_features, AntiOneValuePerPair)
    assert_passes(checks.test_generate_anticorrelated_features, AntiIntervalFromHalf)
    assert_passes(checks.test_generate_combined_batch, CombinedFillReversed)
