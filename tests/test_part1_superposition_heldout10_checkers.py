"""Proofs for part 1's fresh21 fixes: a block built only when the *other* pair count is nonzero (a copy-pasted
`if n_anti:` guard around the correlated block) is caught by the calls with one count 0, and an anticorrelated coin
that reuses the activity draw's uniform is named by the share it gives (min(1, 0.5 / 2p)); the correct combined
batch and a correct one-uniform split (u < p first, p <= u < 2p second) pass."""

from __future__ import annotations

import torch

import tests.part1_superposition as p1
from solutions.part1_superposition import CorrelatedToyModel, ToyModel
from tests.proving import assert_fails, assert_passes


def comb_guard(self, n):
    cfg, p = self.cfg, self.feature_probability
    nc, na = cfg.n_correlated_pairs, cfg.n_anticorrelated_pairs
    blocks = []
    if na:  # copy-pasted from the anticorrelated block's guard
        blocks.append(self.generate_correlated_features(n, p[:, 0 : 2 * nc : 2]))
    if na:
        blocks.append(self.generate_anticorrelated_features(n, p[:, 2 * nc : 2 * (nc + na) : 2]))
    blocks.append(self.generate_uncorrelated_features(n, p[:, 2 * (nc + na) :]))
    return torch.cat(blocks, dim=-1)


def anti_reused_uniform(self, batch_size, p):
    u = torch.rand(batch_size, *p.shape)
    active, first = u < 2 * p, u < 0.5
    present = torch.stack([active & first, active & ~first], -1).flatten(-2)
    return torch.where(present, torch.rand(batch_size, p.shape[0], 2 * p.shape[1]), 0.0)


def anti_one_uniform_split(self, batch_size, p):
    u = torch.rand(batch_size, *p.shape)
    present = torch.stack([u < p, (u >= p) & (u < 2 * p)], -1).flatten(-2)
    return present * torch.rand(batch_size, p.shape[0], 2 * p.shape[1])


def _sub(**methods) -> type:
    return type("Variant", (CorrelatedToyModel,), methods)


def test_block_guarded_by_the_other_count_is_named():
    err = assert_fails(p1.test_generate_combined_batch, _sub(generate_batch=comb_guard), "block_needs_other_count")
    assert "n_anticorrelated_pairs = 0" in err.hint


def test_correct_combined_batch_passes_the_zero_count_calls():
    assert_passes(p1.test_generate_combined_batch, CorrelatedToyModel)


def test_coin_reusing_the_activity_uniform_is_named():
    model = _sub(generate_anticorrelated_features=anti_reused_uniform)
    err = assert_fails(p1.test_generate_anticorrelated_features, model, "presence_probability")
    assert "one uniform reused for both draws" in err.hint


def test_one_uniform_split_passes():
    assert_passes(
        p1.test_generate_anticorrelated_features, _sub(generate_anticorrelated_features=anti_one_uniform_split)
    )


def test_fresh22_forward_weight_transforms_and_gram_edits():
    """fresh22: |W| in the up projection and the Gram matrix with its diagonal forced to 1 are named (generic
    weight-transform and Gram-edit families, shared with part 2's forward)."""

    def absup(self, x):
        h = torch.einsum("...kf,kdf->...kd", x, self.W)
        return torch.relu(torch.einsum("...kd,kdf->...kf", h, self.W.abs()) + self.b_final)

    def diag1(self, x):
        G = torch.einsum("kdf,kdg->kfg", self.W, self.W)
        G = G - torch.diag_embed(G.diagonal(dim1=-2, dim2=-1)) + torch.eye(G.shape[-1])
        return torch.relu(torch.einsum("...kf,kfg->...kg", x, G) + self.b_final)

    err = assert_fails(p1.test_forward, type("M", (ToyModel,), {"forward": absup}), "weight_transform")
    assert "second product" in err.hint and "|W|" in err.hint
    err = assert_fails(p1.test_forward, type("M", (ToyModel,), {"forward": diag1}), "gram_edit")
    assert "diagonal set to 1" in err.hint


def test_a_loss_squaring_the_batch_mean_of_the_error_is_named():
    """The signed error averaged over the batch before squaring (shared with part 2: tests/loss_square_of_mean.py)."""

    def calculate_loss(self, out, batch):
        return (self.importance * (batch - out).mean(0) ** 2).mean(-1).sum()

    impl = type("ToyModel", (ToyModel,), {"calculate_loss": calculate_loss})
    failure = assert_fails(p1.test_calculate_loss, impl, "square_of_mean")
    assert "`batch`" in failure.hint and "square of the mean" in failure.hint
