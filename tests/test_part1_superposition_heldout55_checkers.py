"""Proofs for part 1 after held-out round BB (fresh55).

* The forward pass masked by its input (`* (x > 0)`, `* (x != 0)`, `* (x >= 0)`) is named (`output_masked`), no longer
  read back as a bias moved; the main input has no exact zeros, so a second call with a third of the features at 0
  (`zero_features_check`) catches the mask `x != 0`, which passed before.
* Only the weights term masked by the input, ReLU(WᵀWx · (x != 0) + b) (interference kept for present features only),
  is named too (`interference_masked`, on the zero-features call).
* b_final scaled by d_hidden (= 2 in the check, WᵀW computed first and the bias added per hidden unit) is named with
  the factor in the `bias_twice` hint.
* p rounded before the presence draw (p.round(decimals=1): 0.0103 → never, 0.9887 → always, the other cells vary) is
  read back (`presence_rounded`) instead of being called a draw shared over the batch; the same in the uncorrelated
  generator.
* The same reading among the rate causes (`rates.rounded_rates`): p rounded down ((p * 10).floor() / 10) in
  generate_batch, p.round(decimals=1) in the anticorrelated generator (rounded in float32, as the learner's p is).
* A loss that takes a norm where its square belongs, scaled by a constant (vector_norm over (batch, feats) divided by
  B·F), is read back from its per-instance gradient factors (`loss_root`, in `reduction_relation`).
* Presence as the OR of two draws at p/2 is a rate law of its own, p - p²/4 (`presence_law`).
* Values that crowd the middle are read back as a normal draw through a sigmoid, or shifted and scaled into the range
  (randn min-max rescaled) (`value_distribution`), also before the gap reading (a normal's thin tails looked like a
  gap on [-1, 1]); values beyond the range on both sides are read back as a normal draw (`values_normal`), not as a -1
  mask (`mask_negative` now needs every value <= 1).
* A correlated pair whose second feature is drawn again given the first (rate p²) is named (`second_drawn_again`), and
  one with a draw of its own besides the pair's (second = first | (rand < p)) too (`second_own_draw`).
The round's correct variants pass.
"""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import tests.part1_superposition as checks
from solutions.part1_superposition import CorrelatedToyModel
from tests.proving import assert_fails, assert_passes
from tests.test_part1_superposition_heldout49_checkers import _drawn
from tests.test_part1_superposition_heldout_checkers import _down_up, corr_variant, variant


def _masked(mask):
    return variant(forward=lambda self, x: F.relu(_down_up(x, self.W) + self.b_final) * mask(x))


def test_output_masked_by_input_named():
    err = assert_fails(checks.test_forward, _masked(lambda x: x > 0), "output_masked")
    assert "* (x > 0)" in err.hint and "absent" in err.hint
    err = assert_fails(checks.test_forward, _masked(lambda x: x != 0), "output_masked")
    assert "* (x != 0)" in err.hint and "exactly 0" in err.message


def test_interference_masked_named():
    model = variant(forward=lambda self, x: F.relu(_down_up(x, self.W) * (x != 0) + self.b_final))
    err = assert_fails(checks.test_forward, model, "interference_masked")
    assert "* (x != 0)" in err.hint and "ReLU(b_final) alone" in err.hint


def test_bias_times_d_hidden_named():
    def forward(self, x):
        wtw = einops.einsum(self.W, self.W, "inst d f, inst d g -> inst f g")
        out = einops.einsum(x, wtw, "... inst f, inst f g -> ... inst g")
        return F.relu(out + self.cfg.d_hidden * self.b_final)

    err = assert_fails(checks.test_forward, variant(forward=forward), "bias_twice")
    assert "d_hidden" in err.hint


def _rounded_p(self, n):
    s = (n, self.cfg.n_inst, self.cfg.n_features)
    return torch.where(torch.rand(s) < self.feature_probability.round(decimals=1), torch.rand(s), 0.0)


def test_rounded_p_read_back():
    err = assert_fails(checks.test_generate_batch, variant(generate_batch=_rounded_p), "presence_rounded")
    assert "p.round(decimals=1)" in err.hint and "shared" not in err.hint

    def unc(self, n, p):
        s = (n, *p.shape)
        return torch.where(torch.rand(s) < p.round(decimals=1), torch.rand(s), 0.0)

    assert_fails(
        checks.test_generate_uncorrelated_features, corr_variant(generate_uncorrelated_features=unc), "presence_rounded"
    )


def test_rounded_p_among_rate_causes():
    def floored(self, n):
        s = (n, self.cfg.n_inst, self.cfg.n_features)
        return torch.where(torch.rand(s) < (self.feature_probability * 10).floor() / 10, torch.rand(s), 0.0)

    err = assert_fails(checks.test_generate_batch, variant(generate_batch=floored), "presence_rounded")
    assert "floor()" in err.hint

    def anti(self, n, p):
        return CorrelatedToyModel.generate_anticorrelated_features(self, n, p.round(decimals=1))

    err = assert_fails(
        checks.test_generate_anticorrelated_features,
        corr_variant(generate_anticorrelated_features=anti),
        "presence_rounded",
    )
    assert "p.round(decimals=1)" in err.hint


def test_or_of_two_half_draws_named():
    def generate_batch(self, n):
        s, p = (n, self.cfg.n_inst, self.cfg.n_features), self.feature_probability
        return torch.where((torch.rand(s) < p / 2) | (torch.rand(s) < p / 2), torch.rand(s), 0.0)

    err = assert_fails(checks.test_generate_batch, variant(generate_batch=generate_batch), "presence_law")
    assert "p - p²/4" in err.hint


def _min_max(s):
    z = torch.randn(s)
    return (z - z.min()) / (z.max() - z.min())


def test_normal_values_read_back():
    err = assert_fails(
        checks.test_generate_batch,
        variant(generate_batch=_drawn(lambda s: torch.randn(s).sigmoid())),
        "value_distribution",
    )
    assert "torch.sigmoid(torch.randn" in err.hint
    err = assert_fails(checks.test_generate_batch, variant(generate_batch=_drawn(_min_max)), "value_distribution")
    assert "min-max" in err.hint and "sigmoid" not in err.hint


def test_second_feature_drawn_again_named():
    def corr(self, n, p):
        first = torch.rand(n, *p.shape) < p
        second = first & (torch.rand(n, *p.shape) < p)
        return torch.where(torch.stack([first, second], -1).flatten(-2), torch.rand(n, p.shape[0], 2 * p.shape[1]), 0.0)

    err = assert_fails(
        checks.test_generate_correlated_features, corr_variant(generate_correlated_features=corr), "second_drawn_again"
    )
    assert "p²" in err.hint

    def corr_or(self, n, p):
        first = torch.rand(n, *p.shape) < p
        second = first | (torch.rand(n, *p.shape) < p)
        return torch.where(torch.stack([first, second], -1).flatten(-2), torch.rand(n, p.shape[0], 2 * p.shape[1]), 0.0)

    err = assert_fails(
        checks.test_generate_correlated_features, corr_variant(generate_correlated_features=corr_or), "second_own_draw"
    )
    assert "first | (rand < p)" in err.hint


# ---- the round's correct variants
def _fwd_loop(self, x):
    flat = x.reshape(-1, self.cfg.n_inst, self.cfg.n_features)
    cols = [(flat[:, k] @ self.W[k].T) @ self.W[k] + self.b_final[k] for k in range(self.cfg.n_inst)]
    return torch.stack(cols, 1).clamp(min=0).reshape(x.shape)


def _gb_masked_assign(self, n):
    s = (n, self.cfg.n_inst, self.cfg.n_features)
    present = torch.rand(s) < self.feature_probability
    out = torch.zeros(s)
    out[present] = torch.rand(int(present.sum()))
    return out


def _loss_loop(self, out, batch):
    return sum((self.importance[k] * (batch[:, k] - out[:, k]) ** 2).mean() for k in range(out.shape[1]))


def _anti_top_interval(self, n, p):
    u = torch.rand(n, *p.shape)
    present = torch.stack([u < p, u >= 1 - p], -1).flatten(-2)
    return torch.where(present, torch.rand(n, p.shape[0], 2 * p.shape[1]), 0.0)


def _anti_shared_value(self, n, p):
    active = torch.rand(n, *p.shape) < 2 * p
    which = torch.randint(0, 2, (n, *p.shape)).bool()
    present = torch.stack([active & which, active & ~which], -1).flatten(-2)
    return torch.rand(n, *p.shape).repeat_interleave(2, -1) * present  # only one of a pair is ever shown


def test_round_bb_correct_variants_pass():
    assert_passes(checks.test_forward, variant(forward=_fwd_loop))
    assert_passes(checks.test_generate_batch, variant(generate_batch=_gb_masked_assign))
    assert_passes(checks.test_calculate_loss, variant(calculate_loss=_loss_loop))
    assert_passes(
        checks.test_generate_anticorrelated_features, corr_variant(generate_anticorrelated_features=_anti_top_interval)
    )
    assert_passes(
        checks.test_generate_anticorrelated_features, corr_variant(generate_anticorrelated_features=_anti_shared_value)
    )


def test_unclamped_normal_values_named():  # values beyond [0, 1] on both sides: not a -1 mask
    err = assert_fails(
        checks.test_generate_batch,
        variant(generate_batch=_drawn(lambda s: 0.5 + 0.12 * torch.randn(s))),
        "values_normal",
    )
    assert "torch.randn" in err.hint


def test_norm_where_its_square_belongs_named():
    def loss(self, out, batch):
        d = self.importance.sqrt() * (batch - out)
        return (torch.linalg.vector_norm(d, dim=(0, 2)) / (out.shape[0] * out.shape[2])).sum()

    err = assert_fails(checks.test_calculate_loss, variant(calculate_loss=loss), "loss_root")
    assert "1/√(B·F)" in err.hint and "vector_norm" in err.hint
