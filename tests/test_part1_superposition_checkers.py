"""Proof that part 1's checkers accept correct variants and reject realistic mistakes with the right hint."""

from __future__ import annotations

import einops
import pytest
import torch
import torch.nn.functional as F

import tests.part1_superposition as checks
from solutions.part1_superposition import CorrelatedToyModel, ToyModel, ToyModelConfig
from tests.proving import assert_fails, assert_not_done, assert_passes


def variant(**methods) -> type:
    """A ToyModel subclass with some methods replaced (built with `type`, so the methods are its own)."""
    return type("Variant", (ToyModel,), methods)


def corr_variant(**methods) -> type:
    """A CorrelatedToyModel subclass with some methods replaced."""
    return type("CorrelatedVariant", (CorrelatedToyModel,), methods)


def stub(self, *args, **kwargs):
    raise NotImplementedError()


# --------------------------------------------------------------------------------------------
# forward
# --------------------------------------------------------------------------------------------
def fwd_matmul(self, x):
    WtW = self.W.transpose(-1, -2) @ self.W  # [inst feats feats]
    return torch.relu((WtW @ x.unsqueeze(-1)).squeeze(-1) + self.b_final)


def fwd_two_step_clamp(self, x):
    h = torch.einsum("...if,idf->...id", x, self.W)
    return (torch.einsum("...id,idf->...if", h, self.W) + self.b_final).clamp(min=0)


def fwd_flatten_loop(self, x):
    lead = x.shape[:-2]
    flat = x.reshape(-1, *x.shape[-2:])
    outs = [F.relu(flat[:, i] @ self.W[i].T @ self.W[i] + self.b_final[i]) for i in range(self.W.shape[0])]
    return torch.stack(outs, dim=1).reshape(*lead, *x.shape[-2:])


def fwd_no_relu(self, x):
    h = torch.einsum("...if,idf->...id", x, self.W)
    return torch.einsum("...id,idf->...if", h, self.W) + self.b_final


def fwd_bias_after_relu(self, x):
    h = torch.einsum("...if,idf->...id", x, self.W)
    return F.relu(torch.einsum("...id,idf->...if", h, self.W)) + self.b_final


def fwd_no_bias(self, x):
    h = torch.einsum("...if,idf->...id", x, self.W)
    return F.relu(torch.einsum("...id,idf->...if", h, self.W))


def fwd_hidden_relu(self, x):
    h = F.relu(torch.einsum("...if,idf->...id", x, self.W))
    return F.relu(torch.einsum("...id,idf->...if", h, self.W) + self.b_final)


def fwd_instance_mixing(self, x):
    h = einops.einsum(x, self.W, "... inst feats, inst d feats -> ... d")
    return F.relu(einops.einsum(h, self.W, "... d, inst d feats -> ... inst feats") + self.b_final)


def fwd_batch_only(self, x):
    h = einops.einsum(x, self.W, "batch inst feats, inst d feats -> batch inst d")
    return F.relu(einops.einsum(h, self.W, "batch inst d, inst d feats -> batch inst feats") + self.b_final)


def fwd_float64(self, x):
    return fwd_matmul(self, x).double()


def fwd_returns_none(self, x):
    fwd_matmul(self, x)


@pytest.mark.parametrize(
    "impl",
    [ToyModel, variant(forward=fwd_matmul), variant(forward=fwd_two_step_clamp), variant(forward=fwd_flatten_loop)],
)
def test_forward_accepts(impl):
    assert_passes(checks.test_forward, impl)


@pytest.mark.parametrize(
    ("impl", "code"),
    [
        (fwd_no_relu, "no_relu"),
        (fwd_bias_after_relu, "bias_after_relu"),
        (fwd_no_bias, "no_bias"),
        (fwd_hidden_relu, "hidden_relu"),
        (fwd_instance_mixing, "instance_mixing"),
        (fwd_batch_only, "exception"),
        (fwd_float64, "dtype"),
        (fwd_returns_none, "returned_none"),
    ],
)
def test_forward_rejects(impl, code):
    assert_fails(checks.test_forward, variant(forward=impl), code)


def test_forward_batch_only_einsum_gets_leading_dims_hint():
    # einops raises on the 4D input inside the learner's own function: the message names their code.
    err = assert_fails(checks.test_forward, variant(forward=fwd_batch_only), "exception")
    assert "your code raised" in err.message and "fwd_batch_only" in err.message


# --------------------------------------------------------------------------------------------
# generate_batch (and the uncorrelated generator, which checks the same properties)
# --------------------------------------------------------------------------------------------
def gb_bernoulli(self, n):
    p = self.feature_probability.expand(n, -1, -1)
    return torch.bernoulli(p) * torch.rand_like(p)


def gb_uniform_inplace(self, n):
    x = torch.empty(n, self.cfg.n_inst, self.cfg.n_features, device=self.W.device).uniform_(0, 1)
    mask = torch.rand_like(x) <= self.feature_probability
    return x * mask


def gb_einops_loop(self, n):
    rows = []
    for i in range(self.cfg.n_inst):
        p = self.feature_probability[i]
        rows.append(torch.where(torch.rand(n, len(p), device=p.device) < p, torch.rand(n, len(p), device=p.device), 0))
    return torch.stack(rows, dim=1)


def gb_constant(self, n):
    return (
        torch.rand(n, self.cfg.n_inst, self.cfg.n_features, device=self.W.device) < self.feature_probability
    ).float()


def gb_shared_mask(self, n):
    u = torch.rand(n, self.cfg.n_inst, 1, device=self.W.device)
    return torch.where(
        u < self.feature_probability, torch.rand(n, self.cfg.n_inst, self.cfg.n_features, device=self.W.device), 0.0
    )


def gb_same_random_numbers(self, n):
    u = torch.rand(n, self.cfg.n_inst, self.cfg.n_features, device=self.W.device)
    return torch.where(u < self.feature_probability, u, 0.0)


def gb_one_minus_p(self, n):
    shape = (n, self.cfg.n_inst, self.cfg.n_features)
    return torch.where(
        torch.rand(shape, device=self.W.device) > self.feature_probability, torch.rand(shape, device=self.W.device), 0.0
    )


def gb_wrong_axis_order(self, n):
    shape = (self.cfg.n_inst, n, self.cfg.n_features)
    return torch.where(
        torch.rand(shape, device=self.W.device) < self.feature_probability[:, None],
        torch.rand(shape, device=self.W.device),
        0.0,
    )


def gb_shared_over_batch(self, n):
    mask = torch.rand(self.cfg.n_inst, self.cfg.n_features, device=self.W.device) < self.feature_probability
    return mask * torch.rand(n, self.cfg.n_inst, self.cfg.n_features, device=self.W.device)


def gb_shared_over_instances(self, n):
    u = torch.rand(n, 1, self.cfg.n_features, device=self.W.device)
    return torch.where(
        u < self.feature_probability, torch.rand(n, self.cfg.n_inst, self.cfg.n_features, device=self.W.device), 0.0
    )


def gb_normal_values(self, n):
    shape = (n, self.cfg.n_inst, self.cfg.n_features)
    return torch.where(
        torch.rand(shape, device=self.W.device) < self.feature_probability,
        torch.randn(shape, device=self.W.device),
        0.0,
    )


def gb_mean_probability(self, n):
    shape = (n, self.cfg.n_inst, self.cfg.n_features)
    return torch.where(
        torch.rand(shape, device=self.W.device) < self.feature_probability.mean(),
        torch.rand(shape, device=self.W.device),
        0.0,
    )


def gb_cpu(self, n):
    return ToyModel.generate_batch(self, n).cpu()


CORRECT_BATCHES = [gb_bernoulli, gb_uniform_inplace, gb_einops_loop]


@pytest.mark.parametrize("impl", [ToyModel, *[variant(generate_batch=f) for f in CORRECT_BATCHES]])
def test_generate_batch_accepts(impl):
    assert_passes(checks.test_generate_batch, impl)


@pytest.mark.parametrize(
    ("impl", "code"),
    [
        (gb_constant, "constant_magnitude"),
        (gb_shared_mask, "shared_mask"),
        (gb_same_random_numbers, "values_reuse_mask"),
        (gb_one_minus_p, "presence_probability"),
        (gb_wrong_axis_order, "shape"),
        (gb_shared_over_batch, "shared_over_batch"),
        (gb_shared_over_instances, "shared_mask"),
        (gb_normal_values, "value_range"),
        (gb_mean_probability, "presence_probability"),
    ],
)
def test_generate_batch_rejects(impl, code):
    assert_fails(checks.test_generate_batch, variant(generate_batch=impl), code)


def test_generate_batch_hints_name_the_mistake():
    err = assert_fails(checks.test_generate_batch, variant(generate_batch=gb_one_minus_p), "presence_probability")
    assert "rand > p" in err.hint
    err = assert_fails(checks.test_generate_batch, variant(generate_batch=gb_constant), "constant_magnitude")
    assert "U[0, 1]" in err.hint


def unc_from_batch(self, n, p):
    return torch.bernoulli(p.expand(n, -1, -1)) * torch.rand(n, *p.shape, device=p.device)


def unc_one_minus_p(self, n, p):
    return (torch.rand(n, *p.shape, device=p.device) > p) * torch.rand(n, *p.shape, device=p.device)


def unc_shared_mask(self, n, p):
    return (torch.rand(n, p.shape[0], 1, device=p.device) < p) * torch.rand(n, *p.shape, device=p.device)


def unc_ignores_p(self, n, p):
    q = self.feature_probability
    return (torch.rand(n, *q.shape, device=q.device) < q) * torch.rand(n, *q.shape, device=q.device)


@pytest.mark.parametrize("impl", [CorrelatedToyModel, corr_variant(generate_uncorrelated_features=unc_from_batch)])
def test_uncorrelated_accepts(impl):
    assert_passes(checks.test_generate_uncorrelated_features, impl)


@pytest.mark.parametrize(
    ("impl", "code"),
    [
        (unc_one_minus_p, "presence_probability"),
        (unc_shared_mask, "shared_mask"),
        (unc_ignores_p, "presence_probability"),
    ],
)
def test_uncorrelated_rejects(impl, code):
    assert_fails(checks.test_generate_uncorrelated_features, corr_variant(generate_uncorrelated_features=impl), code)


def test_generator_ignoring_its_p_argument_is_told_so():
    err = assert_fails(
        checks.test_generate_uncorrelated_features,
        corr_variant(generate_uncorrelated_features=unc_ignores_p),
        "presence_probability",
    )
    assert "passed in as `p`" in err.hint


# --------------------------------------------------------------------------------------------
# calculate_loss
# --------------------------------------------------------------------------------------------
def loss_sum_div(self, out, batch):
    b, _, f = batch.shape
    return (self.importance * (out - batch).pow(2)).sum() / (b * f)


def loss_einsum(self, out, batch):
    err = (batch - out) ** 2
    return torch.einsum("bif,if->", err, self.importance) / (batch.shape[0] * batch.shape[2])


def loss_mse_per_instance(self, out, batch):
    total = 0
    for i in range(batch.shape[1]):
        total = total + (self.importance[i] * F.mse_loss(out[:, i], batch[:, i], reduction="none")).mean()
    return total


def loss_no_importance(self, out, batch):
    return ((batch - out) ** 2).mean(dim=(0, 2)).sum()


def loss_mean_all(self, out, batch):
    return (self.importance * (batch - out) ** 2).mean()


def loss_sum_features(self, out, batch):
    return (self.importance * (batch - out) ** 2).sum(-1).mean(0).sum()


def loss_abs(self, out, batch):
    return (self.importance * (batch - out).abs()).mean(dim=(0, 2)).sum()


def loss_importance_squared(self, out, batch):
    return ((self.importance * (batch - out)) ** 2).mean(dim=(0, 2)).sum()


def loss_sum_batch(self, out, batch):
    return (self.importance * (batch - out) ** 2).sum(0).mean(-1).sum()


def loss_per_instance_vector(self, out, batch):
    return (self.importance * (batch - out) ** 2).mean(dim=(0, 2))


def loss_item(self, out, batch):
    return torch.tensor(ToyModel.calculate_loss(self, out, batch).item())


@pytest.mark.parametrize(
    "impl", [ToyModel, *[variant(calculate_loss=f) for f in (loss_sum_div, loss_einsum, loss_mse_per_instance)]]
)
def test_calculate_loss_accepts(impl):
    assert_passes(checks.test_calculate_loss, impl)


@pytest.mark.parametrize(
    ("impl", "code"),
    [
        (loss_no_importance, "no_importance"),
        (loss_mean_all, "mean_over_instances"),
        (loss_sum_features, "sum_over_features"),
        (loss_abs, "not_squared"),
        (loss_importance_squared, "importance_squared"),
        (loss_sum_batch, "sum_over_batch"),
        (loss_per_instance_vector, "not_scalar"),
        (loss_item, "no_grad"),
    ],
)
def test_calculate_loss_rejects(impl, code):
    assert_fails(checks.test_calculate_loss, variant(calculate_loss=impl), code)


# --------------------------------------------------------------------------------------------
# correlated / anticorrelated generators
# --------------------------------------------------------------------------------------------
def corr_bernoulli(self, n, p):
    present = torch.bernoulli(p.expand(n, -1, -1)).repeat_interleave(2, dim=-1)
    return present * torch.rand(n, p.shape[0], 2 * p.shape[1], device=p.device)


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
    return torch.stack(cols, dim=-1)


def corr_independent(self, n, p):
    pp = p.repeat_interleave(2, dim=-1)
    return (torch.rand(n, *pp.shape, device=p.device) < pp) * torch.rand(n, *pp.shape, device=p.device)


def corr_same_value(self, n, p):
    on = torch.rand(n, *p.shape, device=p.device) < p
    v = torch.where(on, torch.rand(n, *p.shape, device=p.device), 0.0)
    return v.repeat_interleave(2, dim=-1)


def corr_two_pair_layout(self, n, p):
    on = einops.repeat(torch.rand(n, *p.shape, device=p.device) < p, "b i pair -> b i (two pair)", two=2)
    return on * torch.rand(n, p.shape[0], 2 * p.shape[1], device=p.device)


def corr_one_minus_p(self, n, p):
    on = (torch.rand(n, *p.shape, device=p.device) > p).repeat_interleave(2, dim=-1)
    return on * torch.rand(n, p.shape[0], 2 * p.shape[1], device=p.device)


def corr_shared_over_pairs(self, n, p):
    u = torch.rand(n, p.shape[0], 1, device=p.device)
    on = (u < p).repeat_interleave(2, dim=-1)
    return on * torch.rand(n, p.shape[0], 2 * p.shape[1], device=p.device)


def corr_constant(self, n, p):
    return (torch.rand(n, *p.shape, device=p.device) < p).repeat_interleave(2, dim=-1).float()


@pytest.mark.parametrize(
    "impl",
    [
        CorrelatedToyModel,
        *[corr_variant(generate_correlated_features=f) for f in (corr_bernoulli, corr_stack, corr_loop)],
    ],
)
def test_correlated_accepts(impl):
    assert_passes(checks.test_generate_correlated_features, impl)


@pytest.mark.parametrize(
    ("impl", "code"),
    [
        (corr_independent, "not_together"),
        (corr_same_value, "shared_values"),
        (corr_two_pair_layout, "pair_layout"),
        (corr_one_minus_p, "presence_probability"),
        (corr_shared_over_pairs, "shared_mask"),
        (corr_constant, "constant_magnitude"),
    ],
)
def test_correlated_rejects(impl, code):
    assert_fails(checks.test_generate_correlated_features, corr_variant(generate_correlated_features=impl), code)


def anti_disjoint_intervals(self, n, p):
    u = torch.rand(n, *p.shape, device=p.device)
    present = torch.stack([u < p, u > 1 - p], dim=-1).flatten(-2)
    return present * torch.rand(n, p.shape[0], 2 * p.shape[1], device=p.device)


def anti_categorical(self, n, p):
    probs = torch.stack([p, p, 1 - 2 * p], dim=-1)  # first, second, neither
    choice = torch.multinomial(probs.reshape(-1, 3), n, replacement=True).reshape(*p.shape, n).permute(2, 0, 1)
    present = torch.stack([choice == 0, choice == 1], dim=-1).flatten(-2)
    return present * torch.rand(n, p.shape[0], 2 * p.shape[1], device=p.device)


def anti_loop(self, n, p):
    out = torch.zeros(n, p.shape[0], 2 * p.shape[1], device=p.device)
    for j in range(p.shape[1]):
        active = torch.rand(n, p.shape[0], device=p.device) < 2 * p[:, j]
        which = torch.randint(0, 2, (n, p.shape[0]), device=p.device)
        for k in range(2):
            mask = active & (which == k)
            out[..., 2 * j + k] = mask * torch.rand(n, p.shape[0], device=p.device)
    return out


def anti_second_p_one_minus_p(self, n, p):
    first = torch.rand(n, *p.shape, device=p.device) < p
    second = ~first & (torch.rand(n, *p.shape, device=p.device) < p)
    present = torch.stack([first, second], dim=-1).flatten(-2)
    return present * torch.rand(n, p.shape[0], 2 * p.shape[1], device=p.device)


def anti_active_with_p(self, n, p):
    active = torch.rand(n, *p.shape, device=p.device) < p
    first = torch.rand(n, *p.shape, device=p.device) < 0.5
    present = torch.stack([active & first, active & ~first], dim=-1).flatten(-2)
    return present * torch.rand(n, p.shape[0], 2 * p.shape[1], device=p.device)


def anti_independent(self, n, p):
    pp = p.repeat_interleave(2, dim=-1)
    return (torch.rand(n, *pp.shape, device=p.device) < pp) * torch.rand(n, *pp.shape, device=p.device)


def anti_same_random_numbers(self, n, p):
    u = torch.rand(n, *p.shape, device=p.device)
    present = torch.stack([u < p, u > 1 - p], dim=-1).flatten(-2)
    return present * u.repeat_interleave(2, dim=-1)


def anti_shared_over_instances(self, n, p):
    u = torch.rand(n, 1, p.shape[1], device=p.device)
    present = torch.stack([u < p, u > 1 - p], dim=-1).flatten(-2)
    return present * torch.rand(n, p.shape[0], 2 * p.shape[1], device=p.device)


@pytest.mark.parametrize(
    "impl",
    [
        CorrelatedToyModel,
        *[
            corr_variant(generate_anticorrelated_features=f)
            for f in (anti_disjoint_intervals, anti_categorical, anti_loop)
        ],
    ],
)
def test_anticorrelated_accepts(impl):
    assert_passes(checks.test_generate_anticorrelated_features, impl)


@pytest.mark.parametrize(
    ("impl", "code"),
    [
        (anti_second_p_one_minus_p, "presence_probability"),
        (anti_active_with_p, "presence_probability"),
        (anti_independent, "both_present"),
        (anti_same_random_numbers, "values_reuse_mask"),
        (anti_shared_over_instances, "shared_mask"),
    ],
)
def test_anticorrelated_rejects(impl, code):
    assert_fails(
        checks.test_generate_anticorrelated_features, corr_variant(generate_anticorrelated_features=impl), code
    )


def test_anticorrelated_hint_names_p_times_one_minus_p():
    err = assert_fails(
        checks.test_generate_anticorrelated_features,
        corr_variant(generate_anticorrelated_features=anti_second_p_one_minus_p),
        "presence_probability",
    )
    assert "p(1 - p)" in err.hint


# --------------------------------------------------------------------------------------------
# combined batch
# --------------------------------------------------------------------------------------------
def comb_inline(self, n):
    """Correct without calling the generators: draws everything inline."""
    nc, na = self.cfg.n_correlated_pairs, self.cfg.n_anticorrelated_pairs
    p = self.feature_probability
    dev = p.device
    parts = []
    if nc:
        on = (torch.rand(n, p.shape[0], nc, device=dev) < p[:, 0 : 2 * nc : 2]).repeat_interleave(2, -1)
        parts.append(on * torch.rand(n, p.shape[0], 2 * nc, device=dev))
    if na:
        pa = p[:, 2 * nc : 2 * (nc + na) : 2]
        u = torch.rand(n, p.shape[0], na, device=dev)
        on = torch.stack([u < pa, u > 1 - pa], -1).flatten(-2)
        parts.append(on * torch.rand(n, p.shape[0], 2 * na, device=dev))
    pu = p[:, 2 * (nc + na) :]
    parts.append((torch.rand(n, *pu.shape, device=dev) < pu) * torch.rand(n, *pu.shape, device=dev))
    return torch.cat(parts, -1)


def comb_split(self, n):
    nc, na = self.cfg.n_correlated_pairs, self.cfg.n_anticorrelated_pairs
    pc, pa, pu = torch.split(self.feature_probability, [2 * nc, 2 * na, self.cfg.n_uncorrelated], dim=1)
    return torch.cat(
        [
            self.generate_correlated_features(n, pc[:, ::2]),
            self.generate_anticorrelated_features(n, pa[:, 1::2]),
            self.generate_uncorrelated_features(n, pu),
        ],
        dim=-1,
    )


def comb_list(self, n):
    nc, na = self.cfg.n_correlated_pairs, self.cfg.n_anticorrelated_pairs
    p = self.feature_probability
    idx_c = list(range(0, 2 * nc, 2))
    idx_a = list(range(2 * nc, 2 * (nc + na), 2))
    out = [
        self.generate_correlated_features(n, p[:, idx_c]),
        self.generate_anticorrelated_features(n, p[:, idx_a]),
        self.generate_uncorrelated_features(n, p[:, 2 * (nc + na) :]),
    ]
    return torch.cat(out, dim=2)


def comb_wrong_order(self, n):
    nc, na = self.cfg.n_correlated_pairs, self.cfg.n_anticorrelated_pairs
    p = self.feature_probability
    return torch.cat(
        [
            self.generate_anticorrelated_features(n, p[:, 0 : 2 * na : 2]),
            self.generate_correlated_features(n, p[:, 2 * na : 2 * (na + nc) : 2]),
            self.generate_uncorrelated_features(n, p[:, 2 * (nc + na) :]),
        ],
        dim=-1,
    )


def comb_no_step(self, n):
    nc, na = self.cfg.n_correlated_pairs, self.cfg.n_anticorrelated_pairs
    p = self.feature_probability
    return torch.cat(
        [
            self.generate_correlated_features(n, p[:, :nc]),
            self.generate_anticorrelated_features(n, p[:, nc : nc + na]),
            self.generate_uncorrelated_features(n, p[:, 2 * (nc + na) :]),
        ],
        dim=-1,
    )


def comb_uncorrelated_from_start(self, n):
    nc, na = self.cfg.n_correlated_pairs, self.cfg.n_anticorrelated_pairs
    p = self.feature_probability
    return torch.cat(
        [
            self.generate_correlated_features(n, p[:, 0 : 2 * nc : 2]),
            self.generate_anticorrelated_features(n, p[:, 2 * nc : 2 * (nc + na) : 2]),
            self.generate_uncorrelated_features(n, p[:, : self.cfg.n_uncorrelated]),
        ],
        dim=-1,
    )


def comb_forgets_uncorrelated(self, n):
    nc, na = self.cfg.n_correlated_pairs, self.cfg.n_anticorrelated_pairs
    p = self.feature_probability
    return torch.cat(
        [
            self.generate_correlated_features(n, p[:, 0 : 2 * nc : 2]),
            self.generate_anticorrelated_features(n, p[:, 2 * nc : 2 * (nc + na) : 2]),
        ],
        dim=-1,
    )


def comb_batch_axis_cat(self, n):
    nc, na = self.cfg.n_correlated_pairs, self.cfg.n_anticorrelated_pairs
    p = self.feature_probability
    return torch.cat(
        [
            self.generate_correlated_features(n, p[:, 0 : 2 * nc : 2]),
            self.generate_anticorrelated_features(n, p[:, 2 * nc : 2 * (nc + na) : 2]),
            self.generate_uncorrelated_features(n, p[:, 2 * (nc + na) :]),
        ],
        dim=0,
    )


@pytest.mark.parametrize(
    "impl", [CorrelatedToyModel, *[corr_variant(generate_batch=f) for f in (comb_inline, comb_split, comb_list)]]
)
def test_combined_accepts(impl):
    assert_passes(checks.test_generate_combined_batch, impl)


@pytest.mark.parametrize(
    ("impl", "code"),
    [
        (comb_wrong_order, "block_order"),
        (comb_no_step, "block_probability"),
        (comb_uncorrelated_from_start, "block_probability"),
        (comb_forgets_uncorrelated, "shape"),
        (comb_batch_axis_cat, "exception"),
    ],
)
def test_combined_rejects(impl, code):
    assert_fails(checks.test_generate_combined_batch, corr_variant(generate_batch=impl), code)


# --------------------------------------------------------------------------------------------
# Stubs, wrong arguments, and the learner's RNG
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("check", "make", "method"),
    [
        (checks.test_forward, variant, "forward"),
        (checks.test_generate_batch, variant, "generate_batch"),
        (checks.test_calculate_loss, variant, "calculate_loss"),
        (checks.test_generate_correlated_features, corr_variant, "generate_correlated_features"),
        (checks.test_generate_anticorrelated_features, corr_variant, "generate_anticorrelated_features"),
        (checks.test_generate_uncorrelated_features, corr_variant, "generate_uncorrelated_features"),
        (checks.test_generate_combined_batch, corr_variant, "generate_batch"),
    ],
)
def test_stub_is_not_done(check, make, method):
    err = assert_not_done(check, make(**{method: stub}))
    assert len(str(err).splitlines()) == 1


def test_passing_an_instance_instead_of_the_class():
    instance = ToyModel(ToyModelConfig(n_inst=1), device="cpu")
    assert_fails(checks.test_forward, instance, "not_class")
    instance = CorrelatedToyModel(ToyModelConfig(n_inst=1), device="cpu")
    err = assert_fails(checks.test_generate_correlated_features, instance, "not_class")
    assert "CorrelatedToyModel" in err.hint


@pytest.mark.parametrize(
    "check",
    [
        checks.test_generate_correlated_features,
        checks.test_generate_anticorrelated_features,
        checks.test_generate_uncorrelated_features,
        checks.test_generate_combined_batch,
    ],
)
def test_passing_toy_model_to_a_correlated_check_names_the_subclass(check):
    """The generators live in CorrelatedToyModel; ToyModel (exercises 1-3) has none of them."""
    err = assert_fails(check, ToyModel, "missing_method")
    assert "CorrelatedToyModel" in err.hint


def test_toy_model_keeps_its_own_generate_batch():
    """No method is attached after a class body: ToyModel's generate_batch is exercise 2's, for every later section."""
    for cls in (ToyModel, CorrelatedToyModel):
        for name, member in vars(cls).items():
            if callable(member) and hasattr(member, "__qualname__"):
                assert member.__qualname__ == f"{cls.__name__}.{name}", (cls, name, member.__qualname__)
    assert not any(hasattr(ToyModel, name) for name in checks.GENERATORS)
    cfg = ToyModelConfig(n_inst=2, n_features=4, d_hidden=2, n_correlated_pairs=2)
    torch.manual_seed(0)
    plain = ToyModel(cfg, feature_probability=0.5, device="cpu").generate_batch(2_000)
    torch.manual_seed(0)
    paired = CorrelatedToyModel(cfg, feature_probability=0.5, device="cpu").generate_batch(2_000)
    assert not torch.equal(plain[..., 0] != 0, plain[..., 1] != 0)  # independent features in ToyModel
    assert torch.equal(paired[..., 0] != 0, paired[..., 1] != 0)  # correlated pairs in the subclass


def test_checker_leaves_the_learners_rng_alone():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    checks.test_generate_batch(ToyModel, device="cpu")
    assert torch.equal(torch.rand(3), expected)
