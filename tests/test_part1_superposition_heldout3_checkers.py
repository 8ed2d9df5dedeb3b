"""Proofs for the fresh10 held-out fixes in part 1: |z| as the output nonlinearity, p laid out along the batch,
anticorrelated activity at the features' mean rate; fresh11: a fixed count of present features per example, the
which-one coin of an anticorrelated pair at p / 2 * p, and correlated pairs clamped at p = 1/2; fresh12 and fresh13
(draws shared over the batch, one column per pair, sizes unpacked swapped, a feature-diagonal forward pass)."""

from __future__ import annotations

import einops
import torch

import tests.part1_superposition as p1
from solutions.part1_superposition import CorrelatedToyModel, ToyModel
from tests.proving import assert_fails


def _sub(base, **methods) -> type:
    return type("Variant", (base,), methods)


def forward_abs(self, features):
    h = einops.einsum(features, self.W, "... i f, i d f -> ... i d")
    out = einops.einsum(h, self.W, "... i d, i d f -> ... i f") + self.b_final
    return out.abs()


def uncorrelated_interleaved(self, n, p):
    k, m = p.shape
    probs = p.repeat_interleave(n, 0).view(n, k, m)
    return torch.where(torch.rand(n, k, m) < probs, torch.rand(n, k, m), 0.0)


def anti_pmean(self, n, p):
    k, m = p.shape
    active = torch.rand(n, k, m) < 2 * p.mean(-1, keepdim=True)
    first = torch.rand(n, k, m) < 0.5
    present = torch.stack([active & first, active & ~first], -1).flatten(-2)
    return torch.where(present, torch.rand(n, k, 2 * m), 0.0)


def test_part1_heldout10():
    err = assert_fails(p1.test_forward, _sub(ToyModel, forward=forward_abs), "negative_not_zeroed")
    assert "abs" in err.hint
    model = _sub(CorrelatedToyModel, generate_uncorrelated_features=uncorrelated_interleaved)
    assert_fails(p1.test_generate_uncorrelated_features, model, "batch_layout")
    model = _sub(CorrelatedToyModel, generate_anticorrelated_features=anti_pmean)
    assert_fails(p1.test_generate_anticorrelated_features, model, "feature_mean_probability")


def batch_exact_k(self, n):
    p = self.feature_probability
    kk = (p * p.shape[-1]).round().mean(-1).round().long()
    ranks = torch.rand(n, *p.shape).argsort(-1).argsort(-1)
    return torch.where(ranks < kk[None, :, None], torch.rand(n, *p.shape), 0.0)


def test_part1_heldout11_fixed_count():
    err = assert_fails(p1.test_generate_batch, _sub(ToyModel, generate_batch=batch_exact_k), "fixed_count")
    assert "exactly 2 of the 4 features" in err.message and "fair coin" not in err.hint


def anti_choice_precedence(self, n, p):
    k, m = p.shape
    active = torch.rand(n, k, m) < 2 * p
    first = torch.rand(n, k, m) < p / 2 * p
    present = torch.stack([active & first, active & ~first], -1).flatten(-2)
    return torch.where(present, torch.rand(n, k, 2 * m), 0.0)


def test_part1_heldout11_choice_split():
    model = _sub(CorrelatedToyModel, generate_anticorrelated_features=anti_choice_precedence)
    err = assert_fails(p1.test_generate_anticorrelated_features, model, "presence_probability")
    assert "share of its active examples" in err.hint and "its own probability" not in err.hint


def correlated_clamped(self, n, p):
    k, m = p.shape
    present = (torch.rand(n, k, m) < p.clamp(max=0.5)).repeat_interleave(2, -1)
    return torch.where(present, torch.rand(n, k, 2 * m), 0.0)


def test_part1_heldout11_correlated_clamp():
    model = _sub(CorrelatedToyModel, generate_correlated_features=correlated_clamped)
    err = assert_fails(p1.test_generate_correlated_features, model, "presence_clamped")
    assert "p = 0.8" in err.message


# fresh12: a presence draw on a 0.01 grid, boolean-mask indexing, the loss's square left out or misplaced, a count
# minus one, rates borrowed from a neighbouring feature, the pair slices swapped in the combined batch.
def _shape(self, n):
    return (n, self.cfg.n_inst, self.cfg.n_features)


def batch_grid(self, n):
    s = _shape(self, n)
    return torch.where(torch.randint(0, 100, s) / 100 < self.feature_probability, torch.rand(s), 0.0)


def batch_rounded(self, n):
    s = _shape(self, n)
    return torch.where(torch.rand(s).round(decimals=2) < self.feature_probability, torch.rand(s), 0.0)


def batch_masked(self, n):
    s = _shape(self, n)
    return torch.rand(s)[torch.rand(s) < self.feature_probability]


def uncorrelated_grid(self, n, p):
    s = (n, *p.shape)
    return torch.where(torch.randint(0, 100, s) / 100 < p, torch.rand(s), 0.0)


def uncorrelated_step(self, n, p):
    pp = p[:, ::2].repeat_interleave(2, -1)[:, : p.shape[1]]
    s = (n, *p.shape)
    return torch.where(torch.rand(s) < pp, torch.rand(s), 0.0)


def uncorrelated_rolled(self, n, p):
    pp = p.flatten().roll(1).view(p.shape)
    s = (n, *p.shape)
    return torch.where(torch.rand(s) < pp, torch.rand(s), 0.0)


def loss_with(err):
    def calculate_loss(self, out, batch):
        return einops.reduce(self.importance * err(batch, out), "b i f -> i", "mean").sum()

    return calculate_loss


def loss_bessel(self, out, batch):
    return ((self.importance * (batch - out) ** 2).sum(0) / (batch.shape[0] - 1)).mean(-1).sum()


def combined_swapped(self, n):
    nc, na = self.cfg.n_correlated_pairs, self.cfg.n_anticorrelated_pairs
    p, sa, su = self.feature_probability, 2 * nc, 2 * (nc + na)
    return torch.cat(
        [
            self.generate_correlated_features(n, p[:, sa:su:2]),
            self.generate_anticorrelated_features(n, p[:, 0:sa:2]),
            self.generate_uncorrelated_features(n, p[:, su:]),
        ],
        -1,
    )


def test_part1_heldout12_draws():
    err = assert_fails(p1.test_generate_batch, _sub(ToyModel, generate_batch=batch_grid), "presence_grid")
    assert "randint" in err.hint
    assert_fails(p1.test_generate_batch, _sub(ToyModel, generate_batch=batch_rounded), "presence_grid")
    err = assert_fails(p1.test_generate_batch, _sub(ToyModel, generate_batch=batch_masked), "boolean_mask_flat")
    assert "torch.where(present, values, 0)" in err.hint
    unc = p1.test_generate_uncorrelated_features
    assert_fails(unc, _sub(CorrelatedToyModel, generate_uncorrelated_features=uncorrelated_grid), "presence_grid")
    err = assert_fails(
        unc, _sub(CorrelatedToyModel, generate_uncorrelated_features=uncorrelated_step), "feature_rates_borrowed"
    )
    assert "feature 1 at those of feature 0" in err.hint
    err = assert_fails(
        unc, _sub(CorrelatedToyModel, generate_uncorrelated_features=uncorrelated_rolled), "presence_reordered"
    )
    assert "Possible causes" in err.hint  # not a reshape: the causes are listed
    err = assert_fails(
        p1.test_generate_combined_batch,
        _sub(CorrelatedToyModel, generate_batch=combined_swapped),
        "pair_counts",  # n_corr != n_anti: the swapped slices give each block the other's pair count
    )
    assert "reshape" not in err.hint and "given the anticorrelated slice of p" in err.hint


def test_part1_heldout12_loss():
    for err, code in (
        (lambda b, o: b - o, "loss_not_squared"),
        (lambda b, o: o - b, "loss_not_squared"),
        (lambda b, o: b - o**2, "square_precedence"),
        (lambda b, o: o - b**2, "square_precedence"),
    ):
        assert_fails(p1.test_calculate_loss, _sub(ToyModel, calculate_loss=loss_with(err)), code)
    err = assert_fails(p1.test_calculate_loss, _sub(ToyModel, calculate_loss=loss_bessel), "count_minus_one")
    assert "8/7" in err.hint and "batch" in err.hint


# fresh13: a pair's activity drawn without the batch axis, one column per pair, p.shape unpacked swapped, the first
# feature of an anticorrelated pair drawn on its own, the first product keeping `feats`, clamp(max=0) at the output.
def anti_active_no_batch(self, n, p):
    k, m = p.shape
    active = torch.rand_like(p) < 2 * p  # [inst, pairs]: one draw shared by every example
    first = torch.rand(n, k, m) < 0.5
    present = torch.stack([active & first, active & ~first], -1).flatten(-2)
    return torch.where(present, torch.rand(n, k, 2 * m), 0.0)


def correlated_one_column(self, n, p):
    k, m = p.shape
    cols = [torch.where(torch.rand(n, k) < p[:, j], torch.rand(n, k), 0.0) for j in range(m)]
    return torch.stack(cols, -1)


def correlated_unpack_swapped(self, n, p):
    n_pairs, n_inst = p.shape
    present = (torch.rand(n, n_inst, n_pairs) < p).repeat_interleave(2, -1)
    return torch.where(present, torch.rand(n, n_inst, 2 * n_pairs), 0.0)


def anti_first_own(self, n, p):
    k, m = p.shape
    active = torch.rand(n, k, m) < 2 * p
    first = torch.rand(n, k, m) < p
    present = torch.stack([first, active & ~first], -1).flatten(-2)
    return torch.where(present, torch.rand(n, k, 2 * m), 0.0)


def forward_keeps_feats(self, features):
    h = einops.einsum(features, self.W, "... inst feats, inst d_hidden feats -> ... inst feats")
    out = einops.einsum(h, self.W, "... inst feats, inst d_hidden feats -> ... inst feats")
    return torch.relu(out + self.b_final)


def forward_clamp_max(self, features):
    h = einops.einsum(features, self.W, "... i f, i d f -> ... i d")
    return (einops.einsum(h, self.W, "... i d, i d f -> ... i f") + self.b_final).clamp(max=0)


def forward_negated_softplus(self, features):
    h = einops.einsum(features, self.W, "... i f, i d f -> ... i d")
    return -torch.nn.functional.softplus(-(einops.einsum(h, self.W, "... i d, i d f -> ... i f") + self.b_final))


def test_part1_heldout13_generators():
    model = _sub(CorrelatedToyModel, generate_anticorrelated_features=anti_active_no_batch)
    err = assert_fails(p1.test_generate_anticorrelated_features, model, "shared_over_batch")
    assert "in all 20000 examples" in err.message and "no batch axis" in err.hint
    model = _sub(CorrelatedToyModel, generate_correlated_features=correlated_one_column)
    err = assert_fails(p1.test_generate_correlated_features, model, "one_per_pair")
    assert "second feature of each pair is missing" in err.hint
    model = _sub(CorrelatedToyModel, generate_correlated_features=correlated_unpack_swapped)
    err = assert_fails(p1.test_generate_correlated_features, model, "sizes_swapped")
    assert "your `n_pairs` is 3" in err.message and "n_inst, n_pairs = p.shape" in err.hint
    model = _sub(CorrelatedToyModel, generate_anticorrelated_features=anti_first_own)
    err = assert_fails(p1.test_generate_anticorrelated_features, model, "one_feature_own_draw")
    assert "first is drawn on its own" in err.hint


def test_part1_heldout13_forward():
    err = assert_fails(p1.test_forward, _sub(ToyModel, forward=forward_keeps_feats), "only_own_feature")
    assert "kept `feats`" in err.hint
    err = assert_fails(p1.test_forward, _sub(ToyModel, forward=forward_clamp_max), "output_negative_part")
    assert "clamp(max=0)" in err.hint
    err = assert_fails(p1.test_forward, _sub(ToyModel, forward=forward_negated_softplus), "output_nonpositive")
    assert "possible causes" in err.hint
