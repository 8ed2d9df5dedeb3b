"""Proofs for part 1's diagnoses of held-out mistakes: gradients reaching the parameters, the region where a wrong
output nonlinearity disagrees, the loss weights read from its gradient, generator blocks sized from p, clamped
values, rate tables that are constant or p in another order, and torch.cat along the wrong axis."""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import tests.part1_superposition as checks
from solutions.part1_superposition import CorrelatedToyModel, ToyModel
from tests.proving import assert_fails, assert_passes


def variant(**methods) -> type:
    return type("Variant", (ToyModel,), methods)


def corr_variant(**methods) -> type:
    return type("CorrelatedVariant", (CorrelatedToyModel,), methods)


def _down_up(x, W):
    h = einops.einsum(x, W, "... i f, i d f -> ... i d")
    return einops.einsum(h, W, "... i d, i d f -> ... i f")


def forward_detached_W(self, x):
    return F.relu(_down_up(x, self.W.detach()) + self.b_final)


def forward_clamped(self, x):
    return torch.clamp(_down_up(x, self.W) + self.b_final, 0, 1)


def forward_matmul(self, x):
    out = (self.W.mT @ (self.W @ x.unsqueeze(-1))).squeeze(-1)
    return (out + self.b_final).clamp(min=0)


def test_forward_held_out():
    assert_passes(checks.test_forward, variant(forward=forward_matmul))
    assert_fails(checks.test_forward, variant(forward=forward_detached_W), "no_param_grad")
    assert_fails(checks.test_forward, variant(forward=forward_clamped), "output_capped")


def loss_sqrt_importance(self, out, batch):
    return (self.importance.sqrt() * (batch - out) ** 2).mean((0, 2)).sum()


def loss_scrambled_importance(self, out, batch):
    return (self.importance.flip(-1) * (batch - out) ** 2).mean((0, 2)).sum()


def test_loss_held_out():
    assert_fails(checks.test_calculate_loss, variant(calculate_loss=loss_sqrt_importance), "importance_power")
    assert_fails(checks.test_calculate_loss, variant(calculate_loss=loss_scrambled_importance), "importance_reordered")


def batch_clamped_normal(self, n):
    s = (n, self.cfg.n_inst, self.cfg.n_features)
    return torch.where(torch.rand(s) < self.feature_probability, torch.randn(s).clamp(0, 1), 0.0)


def test_generate_batch_held_out():
    assert_fails(checks.test_generate_batch, variant(generate_batch=batch_clamped_normal), "values_clamped")


def uncorrelated_cfg_shape(self, n, p):
    s = (n, self.cfg.n_inst, self.cfg.n_features)
    return torch.where(torch.rand(s) < p, torch.rand(s), 0.0)


def uncorrelated_reshaped(self, n, p):
    present = (torch.rand(n, p.shape[1], p.shape[0]) < p.T).reshape(n, *p.shape)
    return torch.where(present, torch.rand(n, *p.shape), 0.0)


def correlated_cfg_pairs(self, n, p):
    pairs = self.cfg.n_features // 2
    present = (torch.rand(n, p.shape[0], pairs) < p[:, :pairs]).repeat_interleave(2, -1)
    return torch.where(present, torch.rand(present.shape), 0.0)


def anticorrelated_three_states(self, n, p):
    state = torch.randint(0, 3, (n, *p.shape))
    present = torch.stack([state == 1, state == 2], -1).flatten(-2)
    return torch.where(present, torch.rand(present.shape), 0.0)


def test_generators_held_out():
    unc = checks.test_generate_uncorrelated_features
    assert_fails(unc, corr_variant(generate_uncorrelated_features=uncorrelated_cfg_shape), "block_shape")
    assert_fails(unc, corr_variant(generate_uncorrelated_features=uncorrelated_reshaped), "presence_reordered")
    corr = checks.test_generate_correlated_features
    assert_fails(corr, corr_variant(generate_correlated_features=correlated_cfg_pairs), "block_shape")
    anti = checks.test_generate_anticorrelated_features
    assert_fails(anti, corr_variant(generate_anticorrelated_features=anticorrelated_three_states), "presence_constant")


def combined_cat_instances(self, n):
    nc, na, p = self.cfg.n_correlated_pairs, self.cfg.n_anticorrelated_pairs, self.feature_probability
    blocks = [
        self.generate_correlated_features(n, p[:, 0 : 2 * nc : 2]),
        self.generate_anticorrelated_features(n, p[:, 2 * nc : 2 * (nc + na) : 2]),
        self.generate_uncorrelated_features(n, p[:, 2 * (nc + na) :]),
    ]
    return torch.cat(blocks, dim=1)


def test_combined_held_out():
    assert_fails(checks.test_generate_combined_batch, corr_variant(generate_batch=combined_cat_instances), "cat_axis")


# ---- fresh2 round: rate tables read as a function of p, discrete values, a repeated axis, block sizes
def _shape(self, n):
    return (n, self.cfg.n_inst, self.cfg.n_features)


def gb_randn_presence(self, n):
    s = _shape(self, n)
    return torch.where(torch.randn(s) < self.feature_probability, torch.rand(s), 0.0)


def gb_importance_presence(self, n):
    s = _shape(self, n)
    return torch.where(torch.rand(s) < self.importance, torch.rand(s), 0.0)


def gb_quantised(self, n):
    s = _shape(self, n)
    return torch.where(torch.rand(s) < self.feature_probability, (torch.rand(s) * 4).ceil() / 4, 0.0)


def corr_repeat_on_instances(self, n, p):
    pres = (torch.rand(n, *p.shape) < p).repeat_interleave(2, dim=1)
    return torch.where(pres, torch.rand(pres.shape), 0.0)


def _combined(fix):
    def gb(self, n):
        nc, na, p = self.cfg.n_correlated_pairs, self.cfg.n_anticorrelated_pairs, self.feature_probability
        pc, pa, pu = fix(p, nc, na)
        blocks = [
            self.generate_correlated_features(n, pc),
            self.generate_anticorrelated_features(n, pa),
            self.generate_uncorrelated_features(n, pu),
        ]
        return torch.cat(blocks, -1)

    return gb


def test_fresh2_rate_tables_and_values():
    err = assert_fails(checks.test_generate_batch, variant(generate_batch=gb_randn_presence), "presence_normal")
    assert "Φ(p)" in err.hint
    err = assert_fails(
        checks.test_generate_batch, variant(generate_batch=gb_importance_presence), "importance_as_probability"
    )
    assert "importance" in err.hint
    err = assert_fails(checks.test_generate_batch, variant(generate_batch=gb_quantised), "discrete_values")
    assert "rounded" in err.hint


def test_fresh2_repeated_axis_and_blocks():
    err = assert_fails(
        checks.test_generate_correlated_features,
        corr_variant(generate_correlated_features=corr_repeat_on_instances),
        "repeated_axis",
    )
    assert "`inst`" in err.hint and "repeat_interleave" in err.hint
    empty_anti = _combined(lambda p, nc, na: (p[:, 0 : 2 * nc : 2], p[:, 2 * nc : 2 * na : 2], p[:, 2 * (nc + na) :]))
    err = assert_fails(checks.test_generate_combined_batch, corr_variant(generate_batch=empty_anti), "block_length")
    assert "anticorrelated 6 (expected 10)" in err.message and "p[:, 2 * n_corr : 2 * n_anti : 2]" in err.hint
    inst0 = _combined(
        lambda p, nc, na: (
            p[:1, 0 : 2 * nc : 2].expand(p.shape[0], -1),
            p[:1, 2 * nc : 2 * (nc + na) : 2].expand(p.shape[0], -1),
            p[:1, 2 * (nc + na) :].expand(p.shape[0], -1),
        )
    )
    assert_fails(checks.test_generate_combined_batch, corr_variant(generate_batch=inst0), "first_instance_probability")
    half_anti = _combined(
        lambda p, nc, na: (p[:, 0 : 2 * nc : 2], p[:, 2 * nc : 2 * (nc + na) : 2] / 2, p[:, 2 * (nc + na) :])
    )
    err = assert_fails(
        checks.test_generate_combined_batch, corr_variant(generate_batch=half_anti), "presence_probability"
    )
    assert "0.5 × the right ones" in err.hint


def forward_max_bias(self, x):
    return torch.maximum(_down_up(x, self.W), self.b_final)


def forward_relu_twice(self, x):
    return F.relu(F.relu(_down_up(x, self.W)) + self.b_final)


def forward_sqrt_d(self, x):
    return F.relu(_down_up(x, self.W) / self.W.shape[1] ** 0.5 + self.b_final)


def forward_dropout(self, x):
    return F.relu(F.dropout(_down_up(x, self.W), 0.1) + self.b_final)


def batch_p_normalised(self, n):
    s, p = (n, self.cfg.n_inst, self.cfg.n_features), self.feature_probability
    return torch.where(torch.rand(s) < p / p.sum(-1, keepdim=True), torch.rand(s), 0.0)


def uncorrelated_logits(self, n, p):
    present = torch.distributions.Bernoulli(logits=p).sample((n,)).bool()
    return torch.where(present, torch.rand(present.shape), 0.0)


def test_fresh3_forward_and_rates():
    assert_fails(checks.test_forward, variant(forward=forward_max_bias), "max_with_bias")
    assert_fails(checks.test_forward, variant(forward=forward_relu_twice), "relu_before_bias")
    assert_fails(checks.test_forward, variant(forward=forward_sqrt_d), "weights_term_scale")
    assert_fails(checks.test_forward, variant(forward=forward_dropout), "forward_random")
    assert_fails(checks.test_generate_batch, variant(generate_batch=batch_p_normalised), "presence_transformed_p")
    assert_fails(
        checks.test_generate_uncorrelated_features,
        corr_variant(generate_uncorrelated_features=uncorrelated_logits),
        "presence_transformed_p",
    )


# fresh4: errors and outputs named by the check's own sizes and statistics
def forward_matmul_gram(self, x):
    return F.relu(x @ (self.W.mT @ self.W) + self.b_final)


def gen_reshaped_inst_first(self, n):
    k, f = self.cfg.n_inst, self.cfg.n_features
    x = torch.where(torch.rand(k, n, f) < self.feature_probability[:, None, :], torch.rand(k, n, f), 0.0)
    return x.reshape(n, k, f)


def loss_scalar_mse(self, out, batch):
    return (self.importance * F.mse_loss(out, batch)).sum()


def corr_pairs_from_cfg(self, n, p):
    k, m = self.cfg.n_inst, self.cfg.n_correlated_pairs
    present = (torch.rand(n, k, m) < p).repeat_interleave(2, dim=-1)
    return torch.where(present, torch.rand(n, k, 2 * m), 0.0)


def _slices(corr, anti, unc):
    def generate_batch(self, n):
        nc, na, p = self.cfg.n_correlated_pairs, self.cfg.n_anticorrelated_pairs, self.feature_probability
        a, u = 2 * nc, 2 * (nc + na)
        return torch.cat(
            [
                self.generate_correlated_features(n, p[:, corr(nc, a)]),
                self.generate_anticorrelated_features(n, p[:, anti(a, u)]),
                self.generate_uncorrelated_features(n, p[:, unc(self.cfg.n_uncorrelated, u)]),
            ],
            -1,
        )

    return generate_batch


anti_no_step = _slices(lambda nc, a: slice(0, a, 2), lambda a, u: slice(a, u), lambda m, u: slice(u, None))
corr_stop_nc = _slices(lambda nc, a: slice(0, nc, 2), lambda a, u: slice(a, u, 2), lambda m, u: slice(u, None))
unc_negative = _slices(lambda nc, a: slice(0, a, 2), lambda a, u: slice(a, u, 2), lambda m, u: slice(-m, None))


def test_fresh4_mistakes_are_named():
    err = assert_fails(checks.test_forward, variant(forward=forward_matmul_gram), "axes_met")
    assert "`batch` axis (size 7)" in err.hint and "`inst` axis (size 3)" in err.hint and "matmul" in err.hint
    err = assert_fails(
        checks.test_generate_batch, variant(generate_batch=gen_reshaped_inst_first), "batch_not_stationary"
    )
    assert "one row of p" in err.message and "reshape" in err.hint
    err = assert_fails(checks.test_calculate_loss, variant(calculate_loss=loss_scalar_mse), "importance_uniform")
    assert "Σ importance / n_inst" in err.hint and "reduction='none'" in err.hint
    check = checks.test_generate_correlated_features
    assert_fails(check, corr_variant(generate_correlated_features=corr_pairs_from_cfg), "block_shape")
    err = assert_fails(checks.test_generate_combined_batch, corr_variant(generate_batch=anti_no_step), "block_length")
    assert "anticorrelated 20 (expected 10)" in err.message and "step 2" in err.hint
    err = assert_fails(checks.test_generate_combined_batch, corr_variant(generate_batch=corr_stop_nc), "block_length")
    assert "correlated 2 (expected 4)" in err.message and "halves" in err.hint
    combined = checks.test_generate_combined_batch
    assert_fails(combined, corr_variant(generate_batch=unc_negative), "uncorrelated_negative_slice")


def gb_abs_normal(self, n):
    s = _shape(self, n)
    return torch.where(torch.rand(s) < self.feature_probability, torch.randn(s).abs(), 0.0)


def uncorrelated_mask_plus_values(self, n, p):
    return (torch.rand(n, *p.shape) < p) + torch.rand(n, *p.shape)


def test_fresh5_value_laws():
    """Out-of-range values are described by the law they follow (|N(0, 1)|, the mask added), causes listed."""
    err = assert_fails(checks.test_generate_batch, variant(generate_batch=gb_abs_normal), "values_abs_normal")
    assert "|N(0, 1)|" in err.hint
    unc = checks.test_generate_uncorrelated_features
    plus = corr_variant(generate_uncorrelated_features=uncorrelated_mask_plus_values)
    err = assert_fails(unc, plus, "values_plus_mask")
    assert "mask + values" in err.hint and "no entry is exactly 0" in err.hint


def forward_importance_input(self, x):
    return F.relu(_down_up(x * self.importance, self.W) + self.b_final)


def combined_counts_swapped(self, n):
    nc, na = self.cfg.n_anticorrelated_pairs, self.cfg.n_correlated_pairs
    p, a, u = self.feature_probability, 2 * nc, 2 * (nc + na)
    blocks = [
        self.generate_correlated_features(n, p[:, 0:a:2]),
        self.generate_anticorrelated_features(n, p[:, a:u:2]),
        self.generate_uncorrelated_features(n, p[:, u:]),
    ]
    return torch.cat(blocks, -1)


def test_fresh6_importance_and_counts():
    """Importance in the forward pass is caught (the check's importance is not all 1); the pair counts read from each
    other's config field are caught by a config with unequal counts."""
    err = assert_fails(checks.test_forward, variant(forward=forward_importance_input), "forward_importance")
    assert "loss only" in err.hint
    swapped = corr_variant(generate_batch=combined_counts_swapped)
    err = assert_fails(checks.test_generate_combined_batch, swapped, "pair_counts")
    assert "swapped" in err.hint


# fresh7: quantised values, a pair layout scrambled by stack + reshape, reshape for permute, averaged importances,
# a doubled anticorrelated block
def gb_percent_values(self, n):
    s = (n, self.cfg.n_inst, self.cfg.n_features)
    return torch.where(torch.rand(s) < self.feature_probability, torch.randint(0, 100, s) / 100, 0.0)


def corr_stack_reshape(self, n, p):
    k, m = p.shape
    present = torch.rand(n, k, m) < p
    present = torch.stack([present, present], dim=1).reshape(n, k, 2 * m)
    return torch.where(present, torch.rand(n, k, 2 * m), 0.0)


def forward_reshape_bmm(self, x):
    k, f = x.shape[-2:]
    xi = x.reshape(k, -1, f)
    out = torch.bmm(torch.bmm(xi, self.W.mT), self.W)
    return F.relu(out.reshape(x.shape) + self.b_final)


def loss_importance_mean(self, out, batch):
    return (self.importance.mean(0) * (batch - out) ** 2).mean((0, 2)).sum()


def combined_anti_doubled(self, n):
    nc, na = self.cfg.n_correlated_pairs, self.cfg.n_anticorrelated_pairs
    p = self.feature_probability
    return torch.cat(
        [
            self.generate_correlated_features(n, p[:, 0 : 2 * nc : 2]),
            self.generate_anticorrelated_features(n, 2 * p[:, 2 * nc : 2 * (nc + na) : 2]),
            self.generate_uncorrelated_features(n, p[:, 2 * (nc + na) :]),
        ],
        dim=-1,
    )


def test_fresh7_mistakes_are_named():
    err = assert_fails(checks.test_generate_batch, variant(generate_batch=gb_percent_values), "discrete_values")
    assert "randint(0, m) / m" in err.hint and "look absent" in err.hint
    err = assert_fails(
        checks.test_generate_correlated_features,
        corr_variant(generate_correlated_features=corr_stack_reshape),
        "pair_layout",
    )
    assert "not a pair" in err.message and "reshape" in err.hint
    err = assert_fails(checks.test_forward, variant(forward=forward_reshape_bmm), "reshape_not_permute")
    assert "transpose" in err.hint
    err = assert_fails(checks.test_calculate_loss, variant(calculate_loss=loss_importance_mean), "importance_averaged")
    assert "importance.mean(0)" in err.hint
    err = assert_fails(
        checks.test_generate_combined_batch,
        corr_variant(generate_batch=combined_anti_doubled),
        "anticorrelated_doubled",
    )
    assert "not 2 * p" in err.hint


# fresh8: reseeded draws, clamped probabilities, absent entries set to p, a loss that ignores `out`, the pair
# activated with 1 - (1 - p)², generator arguments swapped.
def batch_reseeded(self, n):
    torch.manual_seed(0)
    s = (n, self.cfg.n_inst, self.cfg.n_features)
    return torch.where(torch.rand(s) < self.feature_probability, torch.rand(s), 0.0)


def batch_p_clamped(self, n):
    s = (n, self.cfg.n_inst, self.cfg.n_features)
    return torch.where(torch.rand(s) < self.feature_probability.clamp(0.05, 0.95), torch.rand(s), 0.0)


def uncorrelated_own_generator(self, n, p):
    g = torch.Generator().manual_seed(0)
    s = (n, *p.shape)
    return torch.where(torch.rand(s, generator=g) < p, torch.rand(s, generator=g), 0.0)


def uncorrelated_absent_p(self, n, p):
    s = (n, *p.shape)
    return torch.where(torch.rand(s) < p, torch.rand(s), p)


def loss_recomputed(self, out, batch):
    return (self.importance * (batch - self(batch)) ** 2).mean((0, 2)).sum()


def anticorrelated_either(self, n, p):
    k, m = p.shape
    active = torch.rand(n, k, m) < 1 - (1 - p) ** 2
    first = torch.rand(n, k, m) < 0.5
    present = torch.stack([active & first, active & ~first], -1).flatten(-2)
    return torch.where(present, torch.rand(n, k, 2 * m), 0.0)


def combined_arguments_swapped(self, n):
    p, sa = self.feature_probability, 2 * self.cfg.n_correlated_pairs
    su = 2 * (self.cfg.n_correlated_pairs + self.cfg.n_anticorrelated_pairs)
    return torch.cat(
        [
            self.generate_correlated_features(p[:, 0:sa:2], n),
            self.generate_anticorrelated_features(p[:, sa:su:2], n),
            self.generate_uncorrelated_features(p[:, su:], n),
        ],
        -1,
    )


def test_fresh8_part1():
    assert_fails(checks.test_generate_batch, variant(generate_batch=batch_reseeded), "same_draws_every_call")
    assert_fails(checks.test_generate_batch, variant(generate_batch=batch_p_clamped), "presence_clamped")
    unc = checks.test_generate_uncorrelated_features
    assert_fails(unc, corr_variant(generate_uncorrelated_features=uncorrelated_own_generator), "same_draws_every_call")
    assert_fails(unc, corr_variant(generate_uncorrelated_features=uncorrelated_absent_p), "absent_not_zero")
    assert_fails(checks.test_calculate_loss, variant(calculate_loss=loss_recomputed), "ignores_out")
    anti = corr_variant(generate_anticorrelated_features=anticorrelated_either)
    assert_fails(checks.test_generate_anticorrelated_features, anti, "active_either")
    swapped = corr_variant(generate_batch=combined_arguments_swapped)
    assert_fails(checks.test_generate_combined_batch, swapped, "generator_arguments")
