"""Proof that part 1's generator checkers (generate_batch, the three correlation generators, the combined batch)
accept correct variants drawn in other ways and reject realistic mistakes, each named by its own code; and that
the alternative hypotheses the checkers test to name a mistake are told apart by their inputs."""

from __future__ import annotations

import einops
import pytest
import torch

import tests.part1_superposition as checks
from solutions.part1_superposition import CorrelatedToyModel, ToyModel
from tests.part1_superposition_mistakes import common_rate_candidates, rate_tolerance
from tests.proving import assert_fails, assert_passes


def variant(**methods) -> type:
    return type("Variant", (ToyModel,), methods)


def corr_variant(**methods) -> type:
    return type("CorrelatedVariant", (CorrelatedToyModel,), methods)


def _shape(self, n):
    return (n, self.cfg.n_inst, self.cfg.n_features)


def _draw(shape, p, values=None, device=None):
    """rand < p presence with the given (or fresh U[0, 1]) values."""
    present = torch.rand(shape, device=device) < p
    return torch.where(present, torch.rand(shape, device=device) if values is None else values, 0.0)


# --------------------------------------------------------------------------------------------
# generate_batch
# --------------------------------------------------------------------------------------------
def gb_bernoulli(self, n):
    p = self.feature_probability.expand(n, -1, -1)
    return torch.bernoulli(p) * torch.rand_like(p)


def gb_uniform_inplace(self, n):
    x = torch.empty(_shape(self, n), device=self.W.device).uniform_(0, 1)
    mask = torch.rand_like(x) <= self.feature_probability
    return x * mask


def gb_loop(self, n):
    rows = []
    for i in range(self.cfg.n_inst):
        p = self.feature_probability[i]
        rows.append(torch.where(torch.rand(n, len(p), device=p.device) < p, torch.rand(n, len(p), device=p.device), 0))
    return torch.stack(rows, dim=1)


def gb_one_minus_u(self, n):
    """1 - U is uniform too, and `rand >= 1 - p` is true with probability p."""
    u = torch.rand(_shape(self, n), device=self.W.device)
    return torch.where(torch.rand_like(u) >= 1 - self.feature_probability, 1 - u, 0.0)


def gb_constant(self, n):
    return (torch.rand(_shape(self, n), device=self.W.device) < self.feature_probability).float()


def gb_shared_over_features(self, n):
    u = torch.rand(n, self.cfg.n_inst, 1, device=self.W.device)
    return torch.where(u < self.feature_probability, torch.rand(_shape(self, n), device=self.W.device), 0.0)


def gb_shared_over_instances(self, n):
    u = torch.rand(n, 1, self.cfg.n_features, device=self.W.device)
    return torch.where(u < self.feature_probability, torch.rand(_shape(self, n), device=self.W.device), 0.0)


def gb_shared_over_batch(self, n):
    mask = torch.rand(self.cfg.n_inst, self.cfg.n_features, device=self.W.device) < self.feature_probability
    return mask * torch.rand(_shape(self, n), device=self.W.device)


def gb_tiled_batch(self, n):
    half = _draw((n // 2, self.cfg.n_inst, self.cfg.n_features), self.feature_probability, device=self.W.device)
    return half.repeat(2, 1, 1)


def gb_same_random_numbers(self, n):
    u = torch.rand(_shape(self, n), device=self.W.device)
    return torch.where(u < self.feature_probability, u, 0.0)


def gb_one_minus_p(self, n):
    shape = _shape(self, n)
    return torch.where(torch.rand(shape) > self.feature_probability, torch.rand(shape), 0.0)


def gb_no_mask(self, n):
    return torch.rand(_shape(self, n), device=self.W.device)


def gb_mask_twice(self, n):
    shape, p = _shape(self, n), self.feature_probability
    return _draw(shape, p) * (torch.rand(shape) < p)


def gb_instance_zero_p(self, n):
    return _draw(_shape(self, n), self.feature_probability[0], device=self.W.device)


def gb_feature_zero_p(self, n):
    return _draw(_shape(self, n), self.feature_probability[:, :1], device=self.W.device)


def gb_mean_probability(self, n):
    return _draw(_shape(self, n), self.feature_probability.mean(), device=self.W.device)


def gb_flipped_instances(self, n):
    return _draw(_shape(self, n), self.feature_probability.flip(0), device=self.W.device)


def gb_normal_values(self, n):
    shape = _shape(self, n)
    return _draw(shape, self.feature_probability, torch.randn(shape))


def gb_signed_values(self, n):
    shape = _shape(self, n)
    return _draw(shape, self.feature_probability, 2 * torch.rand(shape) - 1)


def gb_half_values(self, n):
    shape = _shape(self, n)
    return _draw(shape, self.feature_probability, torch.rand(shape) / 2)


def gb_squared_values(self, n):
    shape = _shape(self, n)
    return _draw(shape, self.feature_probability, torch.rand(shape) ** 2)


def gb_values_shared_over_features(self, n):
    shape = _shape(self, n)
    return _draw(shape, self.feature_probability, torch.rand(n, self.cfg.n_inst, 1).expand(shape))


def gb_wrong_axis_order(self, n):
    shape = (self.cfg.n_inst, n, self.cfg.n_features)
    return _draw(shape, self.feature_probability[:, None])


def gb_float64(self, n):
    return ToyModel.generate_batch(self, n).double()


@pytest.mark.parametrize(
    "impl",
    [ToyModel, *[variant(generate_batch=f) for f in (gb_bernoulli, gb_uniform_inplace, gb_loop, gb_one_minus_u)]],
)
def test_generate_batch_accepts(impl):
    assert_passes(checks.test_generate_batch, impl)


def gb_half_p(self, n):
    shape = _shape(self, n)
    return _draw(shape, self.feature_probability) * (torch.rand(shape) < 0.5)


def gb_two_masks_or(self, n):
    shape, p = _shape(self, n), self.feature_probability
    return torch.where((torch.rand(shape) < p) | (torch.rand(shape) < p), torch.rand(shape), 0.0)


def gb_scaled_values(self, n):
    shape = _shape(self, n)
    return _draw(shape, self.feature_probability, 2 * torch.rand(shape))


def gb_values_shared_over_batch(self, n):
    shape = _shape(self, n)
    return _draw(shape, self.feature_probability, torch.rand(1, *shape[1:]).expand(shape))


GB_MISTAKES = [
    (gb_constant, "constant_magnitude"),
    (gb_shared_over_features, "shared_over_features"),
    (gb_shared_over_instances, "shared_over_instances"),
    (gb_shared_over_batch, "shared_over_batch"),
    (gb_tiled_batch, "repeated_over_batch"),
    (gb_same_random_numbers, "values_reuse_mask"),
    (gb_one_minus_p, "presence_one_minus_p"),
    (gb_no_mask, "always_present"),
    (gb_mask_twice, "presence_p_squared"),
    (gb_instance_zero_p, "first_instance_probability"),
    (gb_feature_zero_p, "first_feature_probability"),
    (gb_mean_probability, "mean_probability"),
    (gb_flipped_instances, "instance_order"),
    (gb_normal_values, "values_normal"),
    (gb_signed_values, "values_signed"),
    (gb_half_values, "values_half_width"),
    (gb_squared_values, "value_distribution"),
    (gb_values_shared_over_features, "values_shared_over_features"),
    (gb_wrong_axis_order, "shape"),
    (gb_float64, "dtype"),
    (gb_half_p, "presence_half_p"),
    (gb_two_masks_or, "presence_or"),
    (gb_scaled_values, "values_scaled"),
    (gb_values_shared_over_batch, "values_shared_over_batch"),
]


@pytest.mark.parametrize(("impl", "code"), GB_MISTAKES, ids=[f.__name__ for f, _ in GB_MISTAKES])
def test_generate_batch_rejects(impl, code):
    assert_fails(checks.test_generate_batch, variant(generate_batch=impl), code)


def test_generate_batch_hints_name_the_mistake():
    err = assert_fails(checks.test_generate_batch, variant(generate_batch=gb_one_minus_p), "presence_one_minus_p")
    assert "rand > p" in err.hint
    err = assert_fails(checks.test_generate_batch, variant(generate_batch=gb_constant), "constant_magnitude")
    assert "U[0, 1]" in err.hint
    err = assert_fails(
        checks.test_generate_batch, variant(generate_batch=gb_shared_over_features), "shared_over_features"
    )
    assert "features" in err.message and "inst" in err.message


# --------------------------------------------------------------------------------------------
# generate_uncorrelated_features
# --------------------------------------------------------------------------------------------
def unc_bernoulli(self, n, p):
    return torch.bernoulli(p.expand(n, -1, -1)) * torch.rand(n, *p.shape, device=p.device)


def unc_via_multinomial_free(self, n, p):
    u = torch.rand(n, *p.shape, device=p.device)
    return (u < p).float() * torch.empty_like(u).uniform_()


def unc_loop(self, n, p):
    return torch.stack([_draw((n, p.shape[1]), p[i], device=p.device) for i in range(p.shape[0])], dim=1)


def unc_one_minus_p(self, n, p):
    return (torch.rand(n, *p.shape) > p) * torch.rand(n, *p.shape)


def unc_shared_over_features(self, n, p):
    return (torch.rand(n, p.shape[0], 1) < p) * torch.rand(n, *p.shape)


def unc_shared_over_instances(self, n, p):
    return (torch.rand(n, 1, p.shape[1]) < p) * torch.rand(n, *p.shape)


def unc_ignores_p(self, n, p):
    q = self.feature_probability
    return (torch.rand(n, *q.shape) < q) * torch.rand(n, *q.shape)


def unc_reuse(self, n, p):
    u = torch.rand(n, *p.shape)
    return u * (u < p)


def unc_constant(self, n, p):
    return (torch.rand(n, *p.shape) < p).float()


def unc_normal(self, n, p):
    return (torch.rand(n, *p.shape) < p) * torch.randn(n, *p.shape)


def unc_mean_p(self, n, p):
    return (torch.rand(n, *p.shape) < p.mean()) * torch.rand(n, *p.shape)


def unc_clamps_p(self, n, p):
    p.clamp_(0.06, 0.85)  # "keep p away from 0 and 1": edits the caller's tensor
    return (torch.rand(n, *p.shape) < p) * torch.rand(n, *p.shape)


@pytest.mark.parametrize(
    "impl",
    [
        CorrelatedToyModel,
        *[corr_variant(generate_uncorrelated_features=f) for f in (unc_bernoulli, unc_via_multinomial_free, unc_loop)],
    ],
)
def test_uncorrelated_accepts(impl):
    assert_passes(checks.test_generate_uncorrelated_features, impl)


UNC_MISTAKES = [
    (unc_one_minus_p, "presence_one_minus_p"),
    (unc_shared_over_features, "shared_over_features"),
    (unc_shared_over_instances, "shared_over_instances"),
    (unc_ignores_p, "ignores_p"),
    (unc_reuse, "values_reuse_mask"),
    (unc_constant, "constant_magnitude"),
    (unc_normal, "values_normal"),
    (unc_mean_p, "mean_probability"),
    (unc_clamps_p, "modified_input"),
]


@pytest.mark.parametrize(("impl", "code"), UNC_MISTAKES, ids=[f.__name__ for f, _ in UNC_MISTAKES])
def test_uncorrelated_rejects(impl, code):
    assert_fails(checks.test_generate_uncorrelated_features, corr_variant(generate_uncorrelated_features=impl), code)


def test_generator_ignoring_its_p_argument_is_told_so():
    err = assert_fails(
        checks.test_generate_uncorrelated_features,
        corr_variant(generate_uncorrelated_features=unc_ignores_p),
        "ignores_p",
    )
    assert "passed in as `p`" in err.hint


# --------------------------------------------------------------------------------------------
# generate_correlated_features
# --------------------------------------------------------------------------------------------
def _values(n, p):
    return torch.rand(n, p.shape[0], 2 * p.shape[1], device=p.device)


def corr_bernoulli(self, n, p):
    return torch.bernoulli(p.expand(n, -1, -1)).repeat_interleave(2, dim=-1) * _values(n, p)


def corr_stack(self, n, p):
    on = torch.rand(n, *p.shape, device=p.device) < p
    a = torch.where(on, torch.rand(n, *p.shape, device=p.device), 0.0)
    b = torch.where(on, torch.rand(n, *p.shape, device=p.device), 0.0)
    return torch.stack([a, b], dim=-1).flatten(-2)


def corr_loop(self, n, p):
    cols = []
    for j in range(p.shape[1]):
        on = (torch.rand(n, p.shape[0], device=p.device) < p[:, j]).float()
        cols += [on * torch.rand(n, p.shape[0], device=p.device), on * torch.rand(n, p.shape[0], device=p.device)]
    return torch.stack(cols, dim=-1) if cols else torch.zeros(n, p.shape[0], 0, device=p.device)  # an empty block


def _corr(n, p, on, values=None):
    return on.repeat_interleave(2, dim=-1) * (_values(n, p) if values is None else values)


def corr_independent(self, n, p):
    pp = p.repeat_interleave(2, dim=-1)
    return (torch.rand(n, *pp.shape) < pp) * torch.rand(n, *pp.shape)


def corr_same_value(self, n, p):
    on = torch.rand(n, *p.shape) < p
    return torch.where(on, torch.rand(n, *p.shape), 0.0).repeat_interleave(2, dim=-1)


def corr_repeat_layout(self, n, p):
    on = (torch.rand(n, *p.shape) < p).repeat(1, 1, 2)  # .repeat tiles: pairs become (j, j + n_pairs)
    return on * _values(n, p)


def corr_two_pair_layout(self, n, p):
    on = einops.repeat(torch.rand(n, *p.shape) < p, "b i pair -> b i (two pair)", two=2)
    return on * _values(n, p)


def corr_one_minus_p(self, n, p):
    return _corr(n, p, torch.rand(n, *p.shape) > p)


def corr_shared_over_pairs(self, n, p):
    return _corr(n, p, torch.rand(n, p.shape[0], 1) < p)


def corr_shared_over_instances(self, n, p):
    return _corr(n, p, torch.rand(n, 1, p.shape[1]) < p)


def corr_constant(self, n, p):
    return _corr(n, p, torch.rand(n, *p.shape) < p).bool().float()


def corr_ignores_p(self, n, p):
    q = self.feature_probability[:, 0::2]
    return _corr(n, p, torch.rand(n, *q.shape) < q)


def corr_both_coins(self, n, p):
    """Both features 'present with probability p' and together: two coins AND-ed, so the pair is on with p²."""
    return _corr(n, p, (torch.rand(n, *p.shape) < p) & (torch.rand(n, *p.shape) < p))


def corr_reuse(self, n, p):
    """One uniform tensor of the full shape: its even entries decide presence and also serve as values."""
    u = torch.rand(n, p.shape[0], 2 * p.shape[1])
    return (u[..., 0::2] < p).repeat_interleave(2, dim=-1) * u


def corr_first_pair_p(self, n, p):
    return _corr(n, p, torch.rand(n, *p.shape) < p[:, :1])


def corr_values_shared_over_pairs(self, n, p):
    v = torch.rand(n, p.shape[0], 1, 2).expand(n, p.shape[0], p.shape[1], 2).flatten(-2)
    return _corr(n, p, torch.rand(n, *p.shape) < p, v)


@pytest.mark.parametrize(
    "impl",
    [
        CorrelatedToyModel,
        *[corr_variant(generate_correlated_features=f) for f in (corr_bernoulli, corr_stack, corr_loop)],
    ],
)
def test_correlated_accepts(impl):
    assert_passes(checks.test_generate_correlated_features, impl)


CORR_MISTAKES = [
    (corr_independent, "not_together"),
    (corr_same_value, "shared_values"),
    (corr_repeat_layout, "pair_layout"),
    (corr_two_pair_layout, "pair_layout"),
    (corr_one_minus_p, "presence_one_minus_p"),
    (corr_shared_over_pairs, "shared_over_pairs"),
    (corr_shared_over_instances, "shared_over_instances"),
    (corr_constant, "constant_magnitude"),
    (corr_ignores_p, "ignores_p"),
    (corr_both_coins, "presence_p_squared"),
    (corr_reuse, "values_reuse_mask"),
    (corr_first_pair_p, "first_pair_probability"),
    (corr_values_shared_over_pairs, "values_shared_over_pairs"),
]


@pytest.mark.parametrize(("impl", "code"), CORR_MISTAKES, ids=[f.__name__ for f, _ in CORR_MISTAKES])
def test_correlated_rejects(impl, code):
    assert_fails(checks.test_generate_correlated_features, corr_variant(generate_correlated_features=impl), code)


# --------------------------------------------------------------------------------------------
# generate_anticorrelated_features
# --------------------------------------------------------------------------------------------
def _anti(p, first, second, values=None):
    present = torch.stack([first, second], dim=-1).flatten(-2)
    return present * (torch.rand(present.shape, device=p.device) if values is None else values)


def anti_disjoint_intervals(self, n, p):
    u = torch.rand(n, *p.shape, device=p.device)
    return _anti(p, u < p, u > 1 - p)


def anti_categorical(self, n, p):
    probs = torch.stack([p, p, 1 - 2 * p], dim=-1)  # first, second, neither
    choice = torch.multinomial(probs.reshape(-1, 3), n, replacement=True).reshape(*p.shape, n).permute(2, 0, 1)
    return _anti(p, choice == 0, choice == 1)


def anti_loop(self, n, p):
    out = torch.zeros(n, p.shape[0], 2 * p.shape[1], device=p.device)
    for j in range(p.shape[1]):
        active = torch.rand(n, p.shape[0], device=p.device) < 2 * p[:, j]
        which = torch.randint(0, 2, (n, p.shape[0]), device=p.device)
        for k in range(2):
            out[..., 2 * j + k] = (active & (which == k)) * torch.rand(n, p.shape[0], device=p.device)
    return out


def anti_conditional(self, n, p):
    """First with p; second, when the first is absent, with p / (1 - p): exactly p overall, never together."""
    first = torch.rand(n, *p.shape) < p
    return _anti(p, first, ~first & (torch.rand(n, *p.shape) < p / (1 - p)))


def anti_second_p_one_minus_p(self, n, p):
    first = torch.rand(n, *p.shape) < p
    return _anti(p, first, ~first & (torch.rand(n, *p.shape) < p))


def anti_active_with_p(self, n, p):
    active, first = torch.rand(n, *p.shape) < p, torch.rand(n, *p.shape) < 0.5
    return _anti(p, active & first, active & ~first)


def anti_active_flipped(self, n, p):
    active, first = torch.rand(n, *p.shape) > 2 * p, torch.rand(n, *p.shape) < 0.5
    return _anti(p, active & first, active & ~first)


def anti_independent(self, n, p):
    return _anti(p, torch.rand(n, *p.shape) < p, torch.rand(n, *p.shape) < p)


def anti_same_random_numbers(self, n, p):
    u = torch.rand(n, *p.shape)
    return _anti(p, u < p, u > 1 - p, u.repeat_interleave(2, dim=-1))


def anti_shared_over_instances(self, n, p):
    u = torch.rand(n, 1, p.shape[1])
    return _anti(p, u < p, u > 1 - p)


def anti_shared_over_pairs(self, n, p):
    u = torch.rand(n, p.shape[0], 1)
    return _anti(p, u < p, u > 1 - p)


def anti_choice_shared(self, n, p):
    active, first = torch.rand(n, *p.shape) < 2 * p, torch.rand(n, 1, 1) < 0.5
    return _anti(p, active & first, active & ~first)


def anti_second_above_p(self, n, p):
    u = torch.rand(n, *p.shape)
    return _anti(p, u < p, u > p)


def anti_second_ignores_active(self, n, p):
    active, first = torch.rand(n, *p.shape) < 2 * p, torch.rand(n, *p.shape) < 0.5
    return _anti(p, active & first, ~first)


def anti_no_active(self, n, p):
    first = torch.rand(n, *p.shape) < 0.5
    return _anti(p, first, ~first)


def anti_ignores_p(self, n, p):
    q = self.feature_probability[:, 0::2]
    u = torch.rand(n, *q.shape)
    return _anti(p, u < q, u > 1 - q)


def anti_two_pair_layout(self, n, p):
    u = torch.rand(n, *p.shape)
    present = torch.cat([u < p, u > 1 - p], dim=-1)
    return present * torch.rand(present.shape)


def anti_doubles_p_in_place(self, n, p):
    p *= 2  # "the pair is active with 2p": edits the caller's tensor
    active, first = torch.rand(n, *p.shape) < p, torch.rand(n, *p.shape) < 0.5
    return _anti(p, active & first, active & ~first)


@pytest.mark.parametrize(
    "impl",
    [
        CorrelatedToyModel,
        *[
            corr_variant(generate_anticorrelated_features=f)
            for f in (anti_disjoint_intervals, anti_categorical, anti_loop, anti_conditional)
        ],
    ],
)
def test_anticorrelated_accepts(impl):
    assert_passes(checks.test_generate_anticorrelated_features, impl)


def anti_choice_once(self, n, p):
    active, first = torch.rand(n, *p.shape) < 2 * p, torch.rand(1, *p.shape) < 0.5
    return _anti(p, active & first, active & ~first)


ANTI_MISTAKES = [
    (anti_second_p_one_minus_p, "second_given_first_absent"),
    (anti_active_with_p, "active_with_p"),
    (anti_active_flipped, "active_one_minus"),
    (anti_independent, "independent_pair"),
    (anti_same_random_numbers, "values_reuse_mask"),
    (anti_shared_over_instances, "shared_over_instances"),
    (anti_shared_over_pairs, "shared_over_pairs"),
    (anti_choice_shared, "choice_shared_over_pairs"),
    (anti_second_above_p, "second_one_minus_p"),
    (anti_second_ignores_active, "second_ignores_active"),
    (anti_no_active, "always_active"),
    (anti_ignores_p, "ignores_p"),
    (anti_two_pair_layout, "pair_layout"),
    (anti_doubles_p_in_place, "modified_input"),
    (anti_choice_once, "choice_shared_over_batch"),
]


@pytest.mark.parametrize(("impl", "code"), ANTI_MISTAKES, ids=[f.__name__ for f, _ in ANTI_MISTAKES])
def test_anticorrelated_rejects(impl, code):
    assert_fails(
        checks.test_generate_anticorrelated_features, corr_variant(generate_anticorrelated_features=impl), code
    )


def test_anticorrelated_hint_names_p_times_one_minus_p():
    err = assert_fails(
        checks.test_generate_anticorrelated_features,
        corr_variant(generate_anticorrelated_features=anti_second_p_one_minus_p),
        "second_given_first_absent",
    )
    assert "p(1 - p)" in err.hint


# --------------------------------------------------------------------------------------------
# combined batch
# --------------------------------------------------------------------------------------------
def _blocks(self, n, pc, pa, pu, order=(0, 1, 2), dim=-1):
    parts = [
        self.generate_correlated_features(n, pc),
        self.generate_anticorrelated_features(n, pa),
        self.generate_uncorrelated_features(n, pu),
    ]
    return torch.cat([parts[i] for i in order], dim=dim)


def _counts(self):
    return self.cfg.n_correlated_pairs, self.cfg.n_anticorrelated_pairs, self.feature_probability


def comb_inline(self, n):
    """Correct without calling the generators: draws everything inline."""
    nc, na, p = _counts(self)
    dev = p.device
    parts = []
    if nc:
        on = (torch.rand(n, p.shape[0], nc, device=dev) < p[:, 0 : 2 * nc : 2]).repeat_interleave(2, -1)
        parts.append(on * torch.rand(n, p.shape[0], 2 * nc, device=dev))
    if na:
        pa = p[:, 2 * nc : 2 * (nc + na) : 2]
        u = torch.rand(n, p.shape[0], na, device=dev)
        parts.append(torch.stack([u < pa, u > 1 - pa], -1).flatten(-2) * torch.rand(n, p.shape[0], 2 * na, device=dev))
    pu = p[:, 2 * (nc + na) :]
    parts.append((torch.rand(n, *pu.shape, device=dev) < pu) * torch.rand(n, *pu.shape, device=dev))
    return torch.cat(parts, -1)


def comb_split(self, n):
    nc, na, p = _counts(self)
    pc, pa, pu = torch.split(p, [2 * nc, 2 * na, self.cfg.n_uncorrelated], dim=1)
    return _blocks(self, n, pc[:, ::2], pa[:, ::2], pu)


def comb_index_lists(self, n):
    nc, na, p = _counts(self)
    return _blocks(
        self, n, p[:, list(range(0, 2 * nc, 2))], p[:, list(range(2 * nc, 2 * (nc + na), 2))], p[:, 2 * (nc + na) :]
    )


def comb_wrong_order(self, n):
    nc, na, p = _counts(self)
    return _blocks(
        self, n, p[:, 2 * na : 2 * (na + nc) : 2], p[:, 0 : 2 * na : 2], p[:, 2 * (nc + na) :], order=(1, 0, 2)
    )


def comb_no_step(self, n):
    nc, na, p = _counts(self)
    return _blocks(self, n, p[:, :nc], p[:, nc : nc + na], p[:, 2 * (nc + na) :])


def comb_second_member(self, n):
    nc, na, p = _counts(self)
    return _blocks(self, n, p[:, 1 : 2 * nc : 2], p[:, 2 * nc + 1 : 2 * (nc + na) : 2], p[:, 2 * (nc + na) :])


def comb_anti_offset(self, n):
    nc, na, p = _counts(self)
    return _blocks(self, n, p[:, 0 : 2 * nc : 2], p[:, nc : nc + 2 * na : 2], p[:, 2 * (nc + na) :])


def comb_uncorrelated_from_start(self, n):
    nc, na, p = _counts(self)
    return _blocks(self, n, p[:, 0 : 2 * nc : 2], p[:, 2 * nc : 2 * (nc + na) : 2], p[:, : self.cfg.n_uncorrelated])


def comb_forgets_uncorrelated(self, n):
    nc, na, p = _counts(self)
    return torch.cat(
        [
            self.generate_correlated_features(n, p[:, 0 : 2 * nc : 2]),
            self.generate_anticorrelated_features(n, p[:, 2 * nc : 2 * (nc + na) : 2]),
        ],
        -1,
    )


def comb_batch_axis_cat(self, n):
    nc, na, p = _counts(self)
    return _blocks(self, n, p[:, 0 : 2 * nc : 2], p[:, 2 * nc : 2 * (nc + na) : 2], p[:, 2 * (nc + na) :], dim=0)


def comb_all_uncorrelated(self, n):
    return self.generate_uncorrelated_features(n, self.feature_probability)


@pytest.mark.parametrize(
    "impl", [CorrelatedToyModel, *[corr_variant(generate_batch=f) for f in (comb_inline, comb_split, comb_index_lists)]]
)
def test_combined_accepts(impl):
    assert_passes(checks.test_generate_combined_batch, impl)


COMB_MISTAKES = [
    (comb_wrong_order, "block_order"),
    (comb_no_step, "no_step"),
    (comb_second_member, "second_member"),
    (comb_anti_offset, "anticorrelated_offset"),
    (comb_uncorrelated_from_start, "uncorrelated_slice"),
    (comb_forgets_uncorrelated, "missing_block"),
    (comb_batch_axis_cat, "cat_axis"),
    (comb_all_uncorrelated, "pair_structure"),
]


@pytest.mark.parametrize(("impl", "code"), COMB_MISTAKES, ids=[f.__name__ for f, _ in COMB_MISTAKES])
def test_combined_rejects(impl, code):
    assert_fails(checks.test_generate_combined_batch, corr_variant(generate_batch=impl), code)


# --------------------------------------------------------------------------------------------
# The alternative hypotheses are told apart by the checkers' inputs
# --------------------------------------------------------------------------------------------
def _separated(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Some entry differs by more than twice the tolerance: a sample can't be consistent with both tables."""
    tol = rate_tolerance(checks.N_SAMPLES, a.double()) + rate_tolerance(checks.N_SAMPLES, b.double())
    return bool(((a.double() - b.double()).abs() > tol).any())


def _tables():
    p, pp = checks.P_TABLE, checks.P_PAIRS
    anti_right = pp.repeat_interleave(2, dim=1)
    comb_right, comb = checks.combined_rate_candidates(checks.P_COMBINED, checks.N_CORR, checks.N_ANTI)
    return {
        "independent features": (p, [*common_rate_candidates(p), ("ignores_p", "", torch.full_like(p, 0.97))]),
        "correlated pairs": (pp, [*common_rate_candidates(pp, "pair"), ("ignores_p", "", torch.full_like(pp, 0.97))]),
        "anticorrelated pairs": (
            anti_right,
            checks.anticorrelated_rate_candidates(pp, checks.DECOY["generate_anticorrelated_features"]),
        ),
        "combined": (comb_right, comb),
    }


@pytest.mark.parametrize("name", ["independent features", "correlated pairs", "anticorrelated pairs", "combined"])
def test_rate_hypotheses_are_separable(name):
    right, candidates = _tables()[name]
    for i, (code, _, table) in enumerate(candidates):
        assert _separated(table, right), f"{code} can't be told from the right rates"
        for other, _, other_table in candidates[i + 1 :]:
            assert other == code or _separated(table, other_table), f"{code} and {other} can't be told apart"
