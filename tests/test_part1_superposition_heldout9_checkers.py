"""Proofs for part 1's generic combined-batch config (2 correlated, 5 anticorrelated pairs, 8 uncorrelated
features, 3 instances: no two counts or offsets coincide) and the sparse loss batch: the uncorrelated block started
at 2 * n_corr (the anticorrelated pairs left out of the offset) is named, as are the two counts swapped and a slice
stop of 2 * n_anti; a loss averaged over the present entries only (batch != 0) is named, and the correct loss passes.
"""

from __future__ import annotations

import torch

import tests.part1_superposition as p1
from solutions.part1_superposition import CorrelatedToyModel, ToyModel
from tests.proving import assert_fails, assert_passes


def _combined(slices):
    def generate_batch(self, n):
        cfg, p = self.cfg, self.feature_probability
        corr, anti, unc = slices(p, cfg.n_correlated_pairs, cfg.n_anticorrelated_pairs)
        return torch.cat(
            [
                self.generate_correlated_features(n, corr),
                self.generate_anticorrelated_features(n, anti),
                self.generate_uncorrelated_features(n, unc),
            ],
            dim=-1,
        )

    return type("Variant", (CorrelatedToyModel,), {"generate_batch": generate_batch})


def test_config_sizes_are_generic():
    nc, na, (k, f), d = p1.N_CORR, p1.N_ANTI, p1.P_COMBINED.shape, p1.D_HIDDEN
    sizes = [nc, na, 2 * nc, 2 * na, nc + na, 2 * (nc + na), f - 2 * (nc + na), k, d, f]
    assert len(set(sizes)) == len(sizes) and f not in (4 * nc, 4 * na)


def test_uncorrelated_start_at_two_n_corr_is_named():
    model = _combined(lambda p, nc, na: (p[:, 0 : 2 * nc : 2], p[:, 2 * nc : 2 * (nc + na) : 2], p[:, 2 * nc :]))
    err = assert_fails(p1.test_generate_combined_batch, model, "uncorrelated_start")
    assert "uncorrelated 18 (expected 8)" in err.message
    assert "2 * n_anticorrelated_pairs" in err.hint and "not 2 * n_correlated_pairs" in err.hint
    model = _combined(lambda p, nc, na: (p[:, 0 : 2 * nc : 2], p[:, 2 * nc : 2 * (nc + na) : 2], p[:, nc + na :]))
    err = assert_fails(p1.test_generate_combined_batch, model, "uncorrelated_start")
    assert "not n_correlated_pairs + n_anticorrelated_pairs" in err.hint and "2 * n_correlated_pairs:" not in err.hint


def test_counts_swapped_and_stop_slip_are_named():
    model = _combined(lambda p, nc, na: (p[:, 0 : 2 * na : 2], p[:, 2 * na : 2 * (nc + na) : 2], p[:, 2 * (nc + na) :]))
    err = assert_fails(p1.test_generate_combined_batch, model, "pair_counts")
    assert "swapped" in err.hint and "5 correlated pairs (expected 2)" in err.message
    model = _combined(lambda p, nc, na: (p[:, 0 : 2 * nc : 2], p[:, 2 * nc : 2 * na : 2], p[:, 2 * (nc + na) :]))
    err = assert_fails(p1.test_generate_combined_batch, model, "block_length")
    assert "p[:, 2 * n_corr : 2 * n_anti : 2]" in err.hint
    assert_passes(p1.test_generate_combined_batch, CorrelatedToyModel)


def _loss(reduce):
    def calculate_loss(self, out, batch):
        return reduce(self.importance * (batch - out) ** 2, batch != 0)

    return type("Variant", (ToyModel,), {"calculate_loss": calculate_loss})


def test_mean_over_present_entries_is_named():
    for reduce in (
        lambda err, m: err[m.expand_as(err)].mean(),
        lambda err, m: ((err * m).sum((0, 2)) / m.sum((0, 2))).sum(),
        lambda err, m: err.sum((0, 2)).div(m.sum((0, 2))).sum(),
    ):
        err = assert_fails(p1.test_calculate_loss, _loss(reduce), "mean_over_present")
        assert "present entries only (batch != 0)" in err.hint
    err = assert_fails(p1.test_calculate_loss, _loss(lambda e, m: (e * m).mean((0, 2)).sum()), "absent_errors_dropped")
    assert "batch == 0" in err.hint
    assert_passes(p1.test_calculate_loss, _loss(lambda e, m: e.mean((0, 2)).sum()))
    assert_passes(p1.test_calculate_loss, ToyModel)
