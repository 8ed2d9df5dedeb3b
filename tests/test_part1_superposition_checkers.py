"""Proof that part 1's deterministic checkers (forward, calculate_loss) accept correct variants and reject realistic
mistakes, each with its own code; plus what every part 1 checker does with stubs and wrong arguments.
The generators' proofs are in `test_part1_superposition_generators_checkers.py`."""

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


def fwd_broadcast_inplace_relu(self, x):
    h = (x.unsqueeze(-2) * self.W).sum(-1)  # [... inst d]
    out = (h.unsqueeze(-1) * self.W).sum(-2)
    out += self.b_final  # in place on a new tensor: fine
    return out.relu_()


def _fwd(x, W, b, hidden_relu=False, out_relu=True, bias=1.0, bias_after=False, x_relu=False):
    x = F.relu(x) if x_relu else x
    h = einops.einsum(x, W, "... inst feats, inst d feats -> ... inst d")
    h = F.relu(h) if hidden_relu else h
    pre = einops.einsum(h, W, "... inst d, inst d feats -> ... inst feats")
    if bias_after:
        return F.relu(pre) + b
    pre = pre + bias * b
    return F.relu(pre) if out_relu else pre


def fwd_no_relu(self, x):
    return _fwd(x, self.W, self.b_final, out_relu=False)


def fwd_bias_after_relu(self, x):
    return _fwd(x, self.W, self.b_final, bias_after=True)


def fwd_no_bias(self, x):
    return _fwd(x, self.W, self.b_final, bias=0.0)


def fwd_bias_subtracted(self, x):
    return F.relu(einops.einsum(x, self.W.mT @ self.W, "... inst f, inst g f -> ... inst g") - self.b_final)


def fwd_hidden_relu(self, x):
    return _fwd(x, self.W, self.b_final, hidden_relu=True)


def fwd_relu_on_input(self, x):
    return _fwd(x, self.W, self.b_final, out_relu=False, x_relu=True)


def fwd_instance_mixing(self, x):
    h = einops.einsum(x, self.W, "... inst feats, inst d feats -> ... d")
    return F.relu(einops.einsum(h, self.W, "... d, inst d feats -> ... inst feats") + self.b_final)


def fwd_instance_zero(self, x):
    W0 = self.W[0]
    return F.relu(x @ W0.T @ W0 + self.b_final)


def fwd_instance_zero_bias(self, x):
    return F.relu(torch.einsum("...if,idf,idg->...ig", x, self.W, self.W) + self.b_final[0])


def fwd_no_feature_sum(self, x):
    h = einops.einsum(x, self.W, "... inst feats, inst d feats -> ... inst d feats")
    return F.relu(einops.einsum(h, self.W, "... inst d feats, inst d feats -> ... inst feats") + self.b_final)


def fwd_normalised(self, x):
    W = self.W / self.W.norm(dim=1, keepdim=True)
    return _fwd(x, W, self.b_final)


def fwd_gelu(self, x):
    return F.gelu(_fwd(x, self.W, self.b_final, out_relu=False))


def fwd_returns_hidden(self, x):
    return einops.einsum(x, self.W, "... inst feats, inst d feats -> ... inst d")


def fwd_batch_only(self, x):
    h = einops.einsum(x, self.W, "batch inst feats, inst d feats -> batch inst d")
    return F.relu(einops.einsum(h, self.W, "batch inst d, inst d feats -> batch inst feats") + self.b_final)


def fwd_float64(self, x):
    return fwd_matmul(self, x).double()


def fwd_returns_none(self, x):
    fwd_matmul(self, x)


def fwd_clamps_input(self, x):
    x.clamp_(min=0)  # "features are non-negative anyway": changes the caller's tensor
    return _fwd(x, self.W, self.b_final)


def fwd_squeeze(self, x):
    WtW = (self.W.transpose(-1, -2) @ self.W).squeeze()
    return F.relu(
        torch.einsum("...if,igf->...ig", x, WtW.reshape(self.W.shape[0], self.W.shape[2], -1)) + self.b_final
    ).squeeze()


def fwd_bias_twice(self, x):
    return _fwd(x, self.W, self.b_final, bias=2.0)


@pytest.mark.parametrize(
    "impl",
    [
        ToyModel,
        *[variant(forward=f) for f in (fwd_matmul, fwd_two_step_clamp, fwd_flatten_loop, fwd_broadcast_inplace_relu)],
    ],
)
def test_forward_accepts(impl):
    assert_passes(checks.test_forward, impl)


@pytest.mark.parametrize(
    ("impl", "code"),
    [
        (fwd_no_relu, "no_relu"),
        (fwd_bias_after_relu, "bias_after_relu"),
        (fwd_no_bias, "no_bias"),
        (fwd_bias_subtracted, "bias_sign"),
        (fwd_hidden_relu, "hidden_relu"),
        (fwd_relu_on_input, "relu_on_input"),
        (fwd_instance_mixing, "instance_mixing"),
        (fwd_instance_zero, "first_instance"),
        (fwd_instance_zero_bias, "first_instance_bias"),
        (fwd_no_feature_sum, "diagonal_only"),
        (fwd_normalised, "normalised_weights"),
        (fwd_gelu, "wrong_activation"),
        (fwd_returns_hidden, "returned_hidden"),
        (fwd_batch_only, "leading_dims"),
        (fwd_float64, "dtype"),
        (fwd_returns_none, "returned_none"),
        (fwd_clamps_input, "modified_input"),
        (fwd_squeeze, "squeezed"),
    ],
)
def test_forward_rejects(impl, code):
    assert_fails(checks.test_forward, variant(forward=impl), code)


def fwd_bias_triple(self, x):
    return _fwd(x, self.W, self.b_final, bias=3.0)


def test_forward_unlisted_mistake_gets_a_diagnosis():
    """b_final added three times is in no catalogue: probing with all features 0 still says the bias is wrong."""
    err = assert_fails(checks.test_forward, variant(forward=fwd_bias_triple), "bias_term")
    assert "differs from the expected values" in err.message


def fwd_leaky_out(self, x):
    return F.leaky_relu(_fwd(x, self.W, self.b_final, out_relu=False), 0.2)


def fwd_viewed_W(self, x):
    Wv = self.W.view(self.W.shape[0], self.W.shape[2], self.W.shape[1])  # read as [inst feats d]
    h = torch.einsum("...if,ifd->...id", x, Wv)
    return F.relu(torch.einsum("...id,ifd->...if", h, Wv) + self.b_final)


def fwd_mean_over_d(self, x):
    h = torch.einsum("...if,idf->...id", x, self.W)
    return F.relu(einops.reduce(h[..., None] * self.W, "... i d f -> ... i f", "mean") + self.b_final)


@pytest.mark.parametrize(
    ("impl", "code"),
    [
        (fwd_bias_twice, "bias_twice"),
        (fwd_leaky_out, "negative_not_zeroed"),
        (fwd_viewed_W, "reshaped_weights"),
        (fwd_mean_over_d, "mean_over_hidden"),
    ],
)
def test_forward_rejects_held_out_mistakes(impl, code):
    assert_fails(checks.test_forward, variant(forward=impl), code)


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


def _loss(imp, out, batch, reduce=lambda e: e.mean(dim=(0, 2)).sum(), power=2):
    return reduce(imp * (batch - out).abs() ** power)


def loss_no_importance(self, out, batch):
    return F.mse_loss(out, batch, reduction="none").mean(dim=(0, 2)).sum()


def loss_mean_all(self, out, batch):
    return _loss(self.importance, out, batch, reduce=lambda e: e.mean())


def loss_sum_features(self, out, batch):
    return _loss(self.importance, out, batch, reduce=lambda e: e.sum(-1).mean(0).sum())


def loss_sum_batch(self, out, batch):
    return _loss(self.importance, out, batch, reduce=lambda e: e.sum(0).mean(-1).sum())


def loss_sum_all(self, out, batch):
    return _loss(self.importance, out, batch, reduce=lambda e: e.sum())


def loss_abs(self, out, batch):
    return _loss(self.importance, out, batch, power=1)


def loss_importance_squared(self, out, batch):
    return ((self.importance * (batch - out)) ** 2).mean(dim=(0, 2)).sum()


def loss_importance_of_instance_zero(self, out, batch):
    return _loss(self.importance[0], out, batch)


def loss_rmse(self, out, batch):
    return _loss(self.importance, out, batch, reduce=lambda e: e.mean(dim=(0, 2)).sqrt().sum())


def loss_per_instance_vector(self, out, batch):
    return _loss(self.importance, out, batch, reduce=lambda e: e.mean(dim=(0, 2)))


def loss_item(self, out, batch):
    return torch.tensor(ToyModel.calculate_loss(self, out, batch).item())


def loss_in_place(self, out, batch):
    batch -= out.detach()  # reuses the batch tensor for the error
    return (self.importance * batch**2).mean(dim=(0, 2)).sum() + 0 * out.sum()


def loss_half(self, out, batch):
    return 0.5 * ToyModel.calculate_loss(self, out, batch)


def loss_float64(self, out, batch):
    return _loss(self.importance.double(), out.double(), batch.double())


def loss_weighted_mse(self, out, batch):
    return F.mse_loss(self.importance * out, self.importance * batch)


def loss_sum_features_mean_rest(self, out, batch):
    return (self.importance * (batch - out) ** 2).sum(-1).mean()


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
        (loss_sum_batch, "sum_over_batch"),
        (loss_sum_all, "sum_all"),
        (loss_abs, "not_squared"),
        (loss_importance_squared, "importance_squared"),
        (loss_importance_of_instance_zero, "first_instance_importance"),
        (loss_rmse, "root"),
        (loss_per_instance_vector, "not_scalar"),
        (loss_item, "no_grad"),
        (loss_in_place, "modified_input"),
        (loss_half, "scale"),
        (loss_float64, "dtype"),
        (loss_weighted_mse, "weighted_mse"),
        (loss_sum_features_mean_rest, "reductions"),
    ],
)
def test_calculate_loss_rejects(impl, code):
    assert_fails(checks.test_calculate_loss, variant(calculate_loss=impl), code)


def _imp_loss(weight, target_of=lambda b, o: b - o):
    return lambda self, out, batch: (weight(self.importance) * target_of(batch, out) ** 2).mean((0, 2)).sum()


@pytest.mark.parametrize(
    ("impl", "code"),
    [
        (_imp_loss(lambda imp: imp / imp.sum(-1, keepdim=True)), "importance_rescaled"),
        (_imp_loss(lambda imp: imp.mean(-1, keepdim=True)), "importance_averaged"),
        (lambda self, out, batch: ((self.importance * batch - out) ** 2).mean((0, 2)).sum(), "importance_on_target"),
        (lambda self, out, batch: (self.importance * (batch**2 - out**2)).mean((0, 2)).sum(), "squares_subtracted"),
        (_imp_loss(lambda imp: imp, lambda b, o: b + o), "error_sign"),
    ],
)
def test_calculate_loss_rejects_held_out_mistakes(impl, code):
    assert_fails(checks.test_calculate_loss, variant(calculate_loss=impl), code)


def test_an_unlisted_constant_factor_is_named_from_the_gradient():
    err = assert_fails(checks.test_calculate_loss, variant(calculate_loss=loss_half), "scale")
    assert "0.5" in err.hint and "gradient" in err.hint


# --------------------------------------------------------------------------------------------
# Stubs, wrong arguments, and the learner's RNG (every part 1 checker)
# --------------------------------------------------------------------------------------------
ALL = [
    (checks.test_forward, variant, "forward"),
    (checks.test_generate_batch, variant, "generate_batch"),
    (checks.test_calculate_loss, variant, "calculate_loss"),
    (checks.test_generate_correlated_features, corr_variant, "generate_correlated_features"),
    (checks.test_generate_anticorrelated_features, corr_variant, "generate_anticorrelated_features"),
    (checks.test_generate_uncorrelated_features, corr_variant, "generate_uncorrelated_features"),
    (checks.test_generate_combined_batch, corr_variant, "generate_batch"),
]


@pytest.mark.parametrize(("check", "make", "method"), ALL)
def test_stub_is_not_done(check, make, method):
    err = assert_not_done(check, make(**{method: stub}))
    assert len(str(err).splitlines()) == 1


@pytest.mark.parametrize("check", [c for c, _, _ in ALL])
def test_every_checker_takes_a_class(check):
    assert check.kind == "class"
    assert_fails(check, ToyModel(ToyModelConfig(n_inst=1), device="cpu"), "not_a_class")
    assert_fails(check, None, "passed_none")


def test_passing_an_instance_names_the_class():
    err = assert_fails(
        checks.test_generate_correlated_features,
        CorrelatedToyModel(ToyModelConfig(n_inst=1), device="cpu"),
        "not_a_class",
    )
    assert "CorrelatedToyModel" in err.hint


@pytest.mark.parametrize("check", [c for c, make, _ in ALL if make is corr_variant])
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


# --------------------------------------------------------------------------------------------
# Generators: held-out mistakes (the generators' own proofs are in test_part1_superposition_generators_checkers.py)
# --------------------------------------------------------------------------------------------
def gen_instance_mean(self, n):
    shape = (n, self.cfg.n_inst, self.cfg.n_features)
    return torch.where(torch.rand(shape) < self.feature_probability.mean(0), torch.rand(shape), 0.0)


def corr_one_minus(self, n, p):
    present = (torch.rand(n, *p.shape) < p).repeat_interleave(2, -1)
    v = torch.rand(n, *p.shape)
    return torch.where(present, torch.stack([v, 1 - v], -1).flatten(-2), 0.0)


def anti_coin_p(self, n, p):
    active, first = torch.rand(n, *p.shape) < 2 * p, torch.rand(n, *p.shape) < p
    present = torch.stack([active & first, active & ~first], -1).flatten(-2)
    return torch.where(present, torch.rand(present.shape), 0.0)


def combined_not_doubled(self, n):
    p, nc, na = self.feature_probability, self.cfg.n_correlated_pairs, self.cfg.n_anticorrelated_pairs
    blocks = [
        self.generate_correlated_features(n, p[:, 0 : 2 * nc : 2]),
        self.generate_anticorrelated_features(n, p[:, 2 * nc : 2 * (nc + na) : 2]),
        self.generate_uncorrelated_features(n, p[:, nc + na :]),
    ]
    return torch.cat(blocks, -1)


def gen_rand_product(self, n):
    shape = (n, self.cfg.n_inst, self.cfg.n_features)
    return torch.where(torch.rand(shape) < self.feature_probability, torch.rand(shape) * torch.rand(shape), 0.0)


@pytest.mark.parametrize(
    ("check", "impl", "code"),
    [
        (checks.test_generate_batch, variant(generate_batch=gen_instance_mean), "instance_mean_probability"),
        (
            checks.test_generate_correlated_features,
            corr_variant(generate_correlated_features=corr_one_minus),
            "values_dependent",
        ),
        (
            checks.test_generate_anticorrelated_features,
            corr_variant(generate_anticorrelated_features=anti_coin_p),
            "choice_coin_p",
        ),
        (checks.test_generate_combined_batch, corr_variant(generate_batch=combined_not_doubled), "uncorrelated_start"),
        (checks.test_generate_batch, variant(generate_batch=gen_rand_product), "value_distribution"),
    ],
)
def test_generators_reject_held_out_mistakes(check, impl, code):
    err = assert_fails(check, impl, code)
    if code == "value_distribution":
        assert "product of two uniform draws" in err.hint  # rand * rand, named by its law


def anti_second_2p(self, n, p):  # (2p itself is catalogued: one_feature_own_draw, fresh13) 1.5p is not
    first = torch.rand(n, *p.shape) < p
    second = ~first & (torch.rand(n, *p.shape) < 1.5 * p)
    return torch.where(torch.stack([first, second], -1).flatten(-2), torch.rand(n, *p.shape, 2).flatten(-2), 0.0)


def combined_unc_shifted(self, n):
    p, nc, na = self.feature_probability, self.cfg.n_correlated_pairs, self.cfg.n_anticorrelated_pairs
    blocks = [
        self.generate_correlated_features(n, p[:, 0 : 2 * nc : 2]),
        self.generate_anticorrelated_features(n, p[:, 2 * nc : 2 * (nc + na) : 2]),
        self.generate_uncorrelated_features(n, p[:, 2 * (nc + na) - 1 : -1]),
    ]
    return torch.cat(blocks, -1)


@pytest.mark.parametrize(
    ("check", "impl", "words"),
    [
        (
            checks.test_generate_anticorrelated_features,
            corr_variant(generate_anticorrelated_features=anti_second_2p),
            "the first feature of every pair is present at the right rate",
        ),
        (
            checks.test_generate_combined_batch,
            corr_variant(generate_batch=combined_unc_shifted),
            "the uncorrelated block",
        ),
    ],
)
def test_an_unlisted_rate_mistake_is_located(check, impl, words):
    """No catalogue entry fits, but the hint says which member of the pairs, or which block, has the wrong rates."""
    err = assert_fails(check, impl, "presence_probability")
    assert words in err.hint and "anticorrelated block" not in err.hint
