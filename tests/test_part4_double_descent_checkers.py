"""Proof that part 4's checkers accept correct variants and reject realistic mistakes with the right hint."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import tests.part4_double_descent as checks
from solutions.part1_superposition import ToyModel
from solutions.part4_double_descent import DoubleDescentModel, compute_dimensionality, generate_dataset
from solutions.part4_double_descent import warmup_cosine_lr as ref_warmup_cosine_lr
from tests.proving import assert_fails, assert_not_done, assert_passes, stub
from utils import part4_double_descent as dd
from utils.schedules import warmup_cosine_lr as shared_warmup_cosine_lr


# --------------------------------------------------------------------------------------------
# generate_dataset
# --------------------------------------------------------------------------------------------
def gen_bernoulli_where(n_examples, n_inst, n_features, feature_probability, device=None):
    shape = (n_examples, n_inst, n_features)
    present = torch.bernoulli(torch.full(shape, feature_probability, device=device)).bool()
    values = torch.empty(shape, device=device).uniform_(0, 1)
    x = values * present
    norm = torch.linalg.vector_norm(x, dim=2, keepdim=True)
    return torch.where(norm > 0, x / torch.where(norm > 0, norm, 1.0), 0.0)


def gen_numpy(n_examples, n_inst, n_features, feature_probability, device=None):
    rng = np.random.default_rng(int(torch.randint(2**31, ())))  # seeded from torch's state: new data every call
    x = rng.random((n_examples, n_inst, n_features)) * (
        rng.random((n_examples, n_inst, n_features)) < feature_probability
    )
    norm = np.sqrt((x**2).sum(-1, keepdims=True))
    x = np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)
    return torch.tensor(x, dtype=torch.float32, device=device)


def gen_loop_over_instances(n_examples, n_inst, n_features, feature_probability, device=None):
    out = []
    for _ in range(n_inst):
        mask = torch.rand(n_examples, n_features, device=device) <= feature_probability
        x = torch.rand(n_examples, n_features, device=device).masked_fill(~mask, 0.0)
        out.append(torch.nn.functional.normalize(x, dim=-1))  # F.normalize clamps the norm: zeros stay zeros
    return torch.stack(out, dim=1)


def gen_rsqrt(n_examples, n_inst, n_features, feature_probability, device=None):
    shape = (n_examples, n_inst, n_features)
    x = torch.rand(shape, device=device) * (torch.rand(shape, device=device) < feature_probability).float()
    sq = (x * x).sum(-1, keepdim=True)
    return x * torch.where(sq > 0, sq.rsqrt(), torch.zeros_like(sq))


def _sparse(shape, p, device):
    return torch.where(torch.rand(shape, device=device) < p, torch.rand(shape, device=device), 0.0)


def gen_no_clamp(n_examples, n_inst, n_features, feature_probability, device=None):
    x = _sparse((n_examples, n_inst, n_features), feature_probability, device)
    return x / x.norm(dim=-1, keepdim=True)


def gen_wrong_axis(n_examples, n_inst, n_features, feature_probability, device=None):
    x = _sparse((n_examples, n_inst, n_features), feature_probability, device)
    return x / x.norm(dim=0, keepdim=True).clamp_min(1e-12)


def gen_l1(n_examples, n_inst, n_features, feature_probability, device=None):
    x = _sparse((n_examples, n_inst, n_features), feature_probability, device)
    return x / x.sum(dim=-1, keepdim=True).clamp_min(1e-12)


def gen_not_normalised(n_examples, n_inst, n_features, feature_probability, device=None):
    return _sparse((n_examples, n_inst, n_features), feature_probability, device)


def gen_normalise_then_mask(n_examples, n_inst, n_features, feature_probability, device=None):
    shape = (n_examples, n_inst, n_features)
    values = torch.rand(shape, device=device)
    values = values / values.norm(dim=-1, keepdim=True)
    return torch.where(torch.rand(shape, device=device) < feature_probability, values, 0.0)


def gen_inverted_mask(n_examples, n_inst, n_features, feature_probability, device=None):
    shape = (n_examples, n_inst, n_features)
    x = torch.where(torch.rand(shape, device=device) > feature_probability, torch.rand(shape, device=device), 0.0)
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def gen_constant_values(n_examples, n_inst, n_features, feature_probability, device=None):
    shape = (n_examples, n_inst, n_features)
    x = (torch.rand(shape, device=device) < feature_probability).float()
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def gen_shared_over_instances(n_examples, n_inst, n_features, feature_probability, device=None):
    x = _sparse((n_examples, 1, n_features), feature_probability, device)
    x = x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return x.expand(n_examples, n_inst, n_features).clone()


def gen_values_reuse_mask(n_examples, n_inst, n_features, feature_probability, device=None):
    # One draw for both presence and value. (With `u < p` the values would be U[0, p], which after
    # normalising is the same distribution as U[0, 1]: harmless. With `u > 1 - p` they are U[1 - p, 1].)
    u = torch.rand(n_examples, n_inst, n_features, device=device)
    x = torch.where(u > 1 - feature_probability, u, 0.0)
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def gen_gaussian_values(n_examples, n_inst, n_features, feature_probability, device=None):
    shape = (n_examples, n_inst, n_features)
    x = torch.where(
        torch.rand(shape, device=device) < feature_probability, torch.randn(shape, device=device).abs(), 0.0
    )
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def gen_float64(n_examples, n_inst, n_features, feature_probability, device=None):
    return generate_dataset(n_examples, n_inst, n_features, feature_probability, device).double()


def gen_inst_first(n_examples, n_inst, n_features, feature_probability, device=None):
    return generate_dataset(n_examples, n_inst, n_features, feature_probability, device).transpose(0, 1)


def gen_no_return(n_examples, n_inst, n_features, feature_probability, device=None):
    generate_dataset(n_examples, n_inst, n_features, feature_probability, device)


def gen_u_below_p(n_examples, n_inst, n_features, feature_probability, device=None):
    """One draw for presence and value: u < p, value u (U[0, p], the same as U[0, 1] once normalised)."""
    u = torch.rand(n_examples, n_inst, n_features, device=device)
    x = torch.where(u < feature_probability, u, 0.0)
    return torch.nn.functional.normalize(x, dim=-1)


def gen_max_norm(n_examples, n_inst, n_features, feature_probability, device=None):
    x = _sparse((n_examples, n_inst, n_features), feature_probability, device)
    return x / x.amax(dim=-1, keepdim=True).clamp_min(1e-12)


def gen_norm_squared(n_examples, n_inst, n_features, feature_probability, device=None):
    x = _sparse((n_examples, n_inst, n_features), feature_probability, device)
    return x / (x**2).sum(-1, keepdim=True).clamp_min(1e-12)


def gen_norm_over_instances(n_examples, n_inst, n_features, feature_probability, device=None):
    x = _sparse((n_examples, n_inst, n_features), feature_probability, device)
    return x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)


def gen_global_norm(n_examples, n_inst, n_features, feature_probability, device=None):
    x = _sparse((n_examples, n_inst, n_features), feature_probability, device)
    return x / x.norm()


def gen_epsilon_everywhere(n_examples, n_inst, n_features, feature_probability, device=None):
    x = _sparse((n_examples, n_inst, n_features), feature_probability, device) + 1e-8  # "avoids" 0 / 0
    return x / x.norm(dim=-1, keepdim=True)


def gen_fill_empty(n_examples, n_inst, n_features, feature_probability, device=None):
    x = _sparse((n_examples, n_inst, n_features), feature_probability, device)
    x = x + 1e-6 * (x.sum(-1, keepdim=True) == 0)  # "fixes" the empty examples
    return x / x.norm(dim=-1, keepdim=True)


def gen_mask_per_example(n_examples, n_inst, n_features, feature_probability, device=None):
    present = torch.rand(n_examples, n_inst, 1, device=device) < feature_probability
    x = torch.where(present, torch.rand(n_examples, n_inst, n_features, device=device), 0.0)
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def gen_mask_shared_examples(n_examples, n_inst, n_features, feature_probability, device=None):
    present = torch.rand(1, n_inst, n_features, device=device) < feature_probability
    x = torch.where(present, torch.rand(n_examples, n_inst, n_features, device=device), 0.0)
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def gen_values_shared_instances(n_examples, n_inst, n_features, feature_probability, device=None):
    present = torch.rand(n_examples, n_inst, n_features, device=device) < feature_probability
    x = torch.where(present, torch.rand(n_examples, 1, n_features, device=device), 0.0)
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def gen_values_shared_examples(n_examples, n_inst, n_features, feature_probability, device=None):
    present = torch.rand(n_examples, n_inst, n_features, device=device) < feature_probability
    x = torch.where(present, torch.rand(1, n_inst, n_features, device=device), 0.0)
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def gen_signed_uniform(n_examples, n_inst, n_features, feature_probability, device=None):
    shape = (n_examples, n_inst, n_features)
    x = torch.where(
        torch.rand(shape, device=device) < feature_probability, 2 * torch.rand(shape, device=device) - 1, 0.0
    )
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def gen_randn(n_examples, n_inst, n_features, feature_probability, device=None):
    shape = (n_examples, n_inst, n_features)
    x = torch.where(torch.rand(shape, device=device) < feature_probability, torch.randn(shape, device=device), 0.0)
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def gen_force_a_feature(n_examples, n_inst, n_features, feature_probability, device=None):
    shape = (n_examples, n_inst, n_features)
    present = torch.rand(shape, device=device) < feature_probability
    empty = ~present.any(-1)
    forced = torch.nn.functional.one_hot(torch.randint(0, n_features, shape[:2], device=device), n_features).bool()
    present = present | (forced & empty[..., None])  # no empty examples, so no division by zero
    x = torch.where(present, torch.rand(shape, device=device), 0.0)
    return x / x.norm(dim=-1, keepdim=True)


def gen_no_instances(n_examples, n_inst, n_features, feature_probability, device=None):
    x = _sparse((n_examples, n_features), feature_probability, device)
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def gen_product_values(n_examples, n_inst, n_features, feature_probability, device=None):
    shape = (n_examples, n_inst, n_features)
    values = torch.rand(shape, device=device) * torch.rand(shape, device=device)
    x = torch.where(torch.rand(shape, device=device) < feature_probability, values, 0.0)
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


@pytest.mark.parametrize(
    "impl",
    [generate_dataset, gen_bernoulli_where, gen_numpy, gen_loop_over_instances, gen_rsqrt, gen_u_below_p],
)
def test_generate_dataset_accepts(impl):
    assert_passes(checks.test_generate_dataset, impl)


GEN_MISTAKES = [
    (gen_no_clamp, "empty_examples"),
    (gen_wrong_axis, "norm_axis"),
    (gen_norm_over_instances, "norm_axis_instances"),
    (gen_global_norm, "norm_global"),
    (gen_l1, "l1_norm"),
    (gen_max_norm, "max_norm"),
    (gen_norm_squared, "norm_squared"),
    (gen_not_normalised, "not_normalised"),
    (gen_normalise_then_mask, "normalised_before_mask"),
    (gen_epsilon_everywhere, "epsilon_added"),
    (gen_fill_empty, "empty_filled"),
    (gen_force_a_feature, "no_empty_examples"),
    (gen_inverted_mask, "presence_inverted"),
    (gen_mask_shared_examples, "same_across_examples"),
    (gen_shared_over_instances, "same_across_instances"),
    (gen_mask_per_example, "same_across_features"),
    (gen_constant_values, "constant_values"),
    (gen_values_shared_instances, "values_shared_instances"),
    (gen_values_shared_examples, "values_shared_examples"),
    (gen_values_reuse_mask, "reused_draw"),
    (gen_gaussian_values, "normal_values"),
    (gen_product_values, "squared_values"),
    (gen_signed_uniform, "signed_uniform"),
    (gen_randn, "signed_normal"),
    (gen_float64, "float64_dataset"),
    (gen_inst_first, "axis_order"),
    (gen_no_instances, "missing_inst"),
    (gen_no_return, "returned_none"),
]


@pytest.mark.parametrize(("impl", "code"), GEN_MISTAKES, ids=[f.__name__ for f, _ in GEN_MISTAKES])
def test_generate_dataset_rejects(impl, code):
    assert_fails(checks.test_generate_dataset, impl, code)


def test_generate_dataset_stub():
    assert_not_done(checks.test_generate_dataset, stub)


def test_generate_dataset_inverted_mask_hint():
    failure = assert_fails(checks.test_generate_dataset, gen_inverted_mask, "presence_inverted")
    assert "rand > p" in failure.hint


# --------------------------------------------------------------------------------------------
# warmup_cosine_lr
# --------------------------------------------------------------------------------------------
def lr_min_form(step, steps, warmup_steps):
    warm = step / max(warmup_steps, 1)
    progress = (step - warmup_steps) / (steps - warmup_steps)
    return min(warm, 1.0) if step < warmup_steps else math.cos(math.pi * progress / 2) ** 2


def lr_numpy(step, steps, warmup_steps):
    if warmup_steps > 0 and step < warmup_steps:
        return float(np.linspace(0, 1, warmup_steps + 1)[step])
    return float((1 + np.cos(np.pi * (step - warmup_steps) / (steps - warmup_steps))) / 2)


def lr_tensor(step, steps, warmup_steps):
    s = torch.tensor(float(step), dtype=torch.float64)
    if step < warmup_steps:
        return s / warmup_steps
    return 0.5 * (1 + torch.cos(torch.pi * (s - warmup_steps) / (steps - warmup_steps)))


def lr_no_warmup(step, steps, warmup_steps):
    return 0.5 * (1 + math.cos(math.pi * step / steps))


def lr_not_shifted(step, steps, warmup_steps):
    if step < warmup_steps:
        return step / warmup_steps
    return 0.5 * (1 + math.cos(math.pi * step / steps))


def lr_cosine_length(step, steps, warmup_steps):
    if step < warmup_steps:
        return step / warmup_steps
    return 0.5 * (1 + math.cos(math.pi * (step - warmup_steps) / steps))


def lr_linear_decay(step, steps, warmup_steps):
    if step < warmup_steps:
        return step / warmup_steps
    return 1 - (step - warmup_steps) / (steps - warmup_steps)


def lr_cosine_scale(step, steps, warmup_steps):
    if step < warmup_steps:
        return step / warmup_steps
    return math.cos(math.pi * (step - warmup_steps) / (steps - warmup_steps))


def lr_off_by_one(step, steps, warmup_steps):
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    return ref_warmup_cosine_lr(step, steps, warmup_steps)


def lr_zero_division(step, steps, warmup_steps):
    warm = step / warmup_steps
    return warm if step < warmup_steps else ref_warmup_cosine_lr(step, steps, warmup_steps)


def lr_no_return(step, steps, warmup_steps):
    ref_warmup_cosine_lr(step, steps, warmup_steps)


def lr_float32(step, steps, warmup_steps):
    return np.float32(ref_warmup_cosine_lr(step, steps, warmup_steps))


def lr_non_strict(step, steps, warmup_steps):
    if warmup_steps > 0 and step <= warmup_steps:  # at step == warmup_steps both branches give 1
        return step / warmup_steps
    return 0.5 * (1 + math.cos(math.pi * (step - warmup_steps) / (steps - warmup_steps)))


def lr_end_off_by_one(step, steps, warmup_steps):
    if step < warmup_steps:
        return step / warmup_steps
    return 0.5 * (1 + math.cos(math.pi * (step - warmup_steps) / (steps - warmup_steps - 1)))


def lr_no_offset(step, steps, warmup_steps):
    if step < warmup_steps:
        return step / warmup_steps
    return 0.5 * math.cos(math.pi * (step - warmup_steps) / (steps - warmup_steps))


def lr_full_cosine(step, steps, warmup_steps):
    if step < warmup_steps:
        return step / warmup_steps
    return 0.5 * (1 + math.cos(2 * math.pi * (step - warmup_steps) / (steps - warmup_steps)))


def lr_rising(step, steps, warmup_steps):
    if step < warmup_steps:
        return step / warmup_steps
    return 0.5 * (1 - math.cos(math.pi * (step - warmup_steps) / (steps - warmup_steps)))


def lr_warmup_over_steps(step, steps, warmup_steps):
    if step < warmup_steps:
        return step / steps
    return ref_warmup_cosine_lr(step, steps, warmup_steps)


def lr_integer_division(step, steps, warmup_steps):
    if step < warmup_steps:
        return step // warmup_steps
    return ref_warmup_cosine_lr(step, steps, warmup_steps)


def lr_constant_warmup(step, steps, warmup_steps):
    return 1.0 if step < warmup_steps else ref_warmup_cosine_lr(step, steps, warmup_steps)


def lr_numpy_nan(step, steps, warmup_steps):
    warm = np.float64(step) / np.float64(warmup_steps)  # numpy: 0 / 0 is nan (with a warning), not an error
    return (
        float(min(warm, 1.0))
        if step < warmup_steps or warmup_steps == 0
        else ref_warmup_cosine_lr(step, steps, warmup_steps)
    )


@pytest.mark.parametrize(
    "impl", [ref_warmup_cosine_lr, shared_warmup_cosine_lr, lr_min_form, lr_numpy, lr_float32, lr_non_strict]
)
def test_warmup_cosine_lr_accepts(impl):
    assert_passes(checks.test_warmup_cosine_lr, impl)


LR_MISTAKES = [
    (lr_tensor, "returned_tensor"),
    (lr_no_warmup, "no_warmup"),
    (lr_not_shifted, "cosine_not_shifted"),
    (lr_cosine_length, "cosine_length"),
    (lr_end_off_by_one, "cosine_end_off_by_one"),
    (lr_linear_decay, "linear_decay"),
    (lr_cosine_scale, "cosine_scale"),
    (lr_no_offset, "cosine_no_offset"),
    (lr_full_cosine, "full_cosine"),
    (lr_rising, "cosine_rising"),
    (lr_off_by_one, "warmup_off_by_one"),
    (lr_warmup_over_steps, "warmup_length"),
    (lr_integer_division, "integer_division"),
    (lr_constant_warmup, "warmup_constant"),
    (lr_zero_division, "zero_warmup"),
    (lr_no_return, "returned_none"),
]


@pytest.mark.parametrize(("impl", "code"), LR_MISTAKES, ids=[f.__name__ for f, _ in LR_MISTAKES])
def test_warmup_cosine_lr_rejects(impl, code):
    assert_fails(checks.test_warmup_cosine_lr, impl, code)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_warmup_cosine_lr_nan_at_zero_warmup():
    assert_fails(checks.test_warmup_cosine_lr, lr_numpy_nan, "zero_warmup")


def test_the_exercise_has_the_meaning_of_the_shared_schedule():
    for steps, warmup in [(200, 20), (37, 5), (50, 0), (10, 9)]:
        for s in range(steps):
            assert ref_warmup_cosine_lr(s, steps, warmup) == pytest.approx(shared_warmup_cosine_lr(s, steps, warmup))


def test_warmup_cosine_lr_stub():
    assert_not_done(checks.test_warmup_cosine_lr, stub)


# --------------------------------------------------------------------------------------------
# DoubleDescentModel.generate_batch
# --------------------------------------------------------------------------------------------
def model_variant(generate_batch) -> type:
    return type("Variant", (DoubleDescentModel,), {"generate_batch": generate_batch})


def gb_clone(self, batch_size=None):
    return self.train_data.clone()


def gb_index(self, batch_size=None):
    return self.train_data[torch.arange(self.n_train, device=self.train_data.device)]


def gb_buffer_lookup(self, batch_size=None):
    return dict(self.named_buffers())["train_data"]


def gb_fresh(self, batch_size=None):
    return generate_dataset(self.n_train, self.cfg.n_inst, self.cfg.n_features, self.p, device=self.W.device)


def gb_random_minibatch(self, batch_size=None):
    idx = torch.randint(0, self.n_train, (self.n_train,), device=self.train_data.device)
    return self.train_data[idx]


def gb_first_rows(self, batch_size=None):
    return self.train_data[:batch_size]


def gb_seeded_regeneration(self, batch_size=None):
    torch.manual_seed(0)
    return generate_dataset(self.n_train, self.cfg.n_inst, self.cfg.n_features, self.p, device=self.W.device)


def gb_shuffled(self, batch_size=None):
    g = torch.Generator().manual_seed(1)
    return self.train_data[torch.randperm(self.n_train, generator=g).to(self.train_data.device)]


def gb_in_place_noise(self, batch_size=None):
    return self.train_data.mul_(1.0).add_(0.0).clamp_(max=0.9)


def gb_detach(self, batch_size=None):
    return self.train_data.detach()


def gb_model_output(self, batch_size=None):
    return self(self.train_data)


def gb_first_instance(self, batch_size=None):
    return self.train_data[:, :1].expand_as(self.train_data).clone()


def gb_transposed(self, batch_size=None):
    return self.train_data.transpose(0, 1)


def gb_part1(self, batch_size=None):
    return ToyModel.generate_batch(self, batch_size or self.n_train)


def gb_fresh_batch(self, batch_size=None):
    n = batch_size or self.n_train
    return generate_dataset(n, self.cfg.n_inst, self.cfg.n_features, self.p, device=self.W.device)


def gb_required_batch_size(self, batch_size):
    return self.train_data


@pytest.mark.parametrize("impl", [DoubleDescentModel.generate_batch, gb_clone, gb_index, gb_buffer_lookup, gb_detach])
def test_generate_batch_accepts(impl):
    assert_passes(checks.test_generate_batch, model_variant(impl))


GB_MISTAKES = [
    (gb_fresh, "not_fixed"),
    (gb_random_minibatch, "minibatch"),
    (gb_first_rows, "batch_size_rows"),
    (gb_seeded_regeneration, "regenerated"),
    (gb_shuffled, "shuffled"),
    (gb_in_place_noise, "modified"),
    (gb_model_output, "model_output"),
    (gb_first_instance, "first_instance"),
    (gb_transposed, "axis_order"),
    (gb_part1, "part1_batch"),
    (gb_fresh_batch, "fresh_batch"),
    (gb_required_batch_size, "signature"),
]


@pytest.mark.parametrize(("impl", "code"), GB_MISTAKES, ids=[f.__name__ for f, _ in GB_MISTAKES])
def test_generate_batch_rejects(impl, code):
    assert_fails(checks.test_generate_batch, model_variant(impl), code)


def test_generate_batch_stub():
    assert_not_done(checks.test_generate_batch, model_variant(lambda self, batch_size=None: stub()))


def test_generate_batch_wants_the_class():
    assert_fails(checks.test_generate_batch, DoubleDescentModel.generate_batch, "not_a_class")


# --------------------------------------------------------------------------------------------
# compute_dimensionality
# --------------------------------------------------------------------------------------------
def dim_gram(vectors):
    gram = vectors.transpose(-1, -2) @ vectors  # [inst d d]
    quad = torch.einsum("kni,kij,knj->kn", vectors, gram, vectors)
    norm_sq = vectors.pow(2).sum(-1)
    return torch.where(norm_sq > 0, norm_sq**2 / quad.clamp_min(1e-30), torch.zeros_like(norm_sq))


def dim_loop(vectors):
    out = torch.zeros(vectors.shape[:2], device=vectors.device)
    for k in range(vectors.shape[0]):
        for i in range(vectors.shape[1]):
            n = vectors[k, i].norm()
            if n > 0:
                out[k, i] = n**2 / ((vectors[k] @ (vectors[k, i] / n)) ** 2).sum()
    return out


def dim_normalize(vectors):
    unit = torch.nn.functional.normalize(vectors, dim=-1)
    overlaps = (unit @ vectors.transpose(-1, -2)) ** 2
    return vectors.norm(dim=-1) ** 2 / overlaps.sum(-1).clamp_min(1e-30)


def dim_self_excluded(vectors):
    unit = torch.nn.functional.normalize(vectors, dim=-1)
    overlaps = (unit @ vectors.transpose(-1, -2)) ** 2
    overlaps = overlaps * (1 - torch.eye(vectors.shape[1], device=vectors.device))
    return vectors.norm(dim=-1) ** 2 / overlaps.sum(-1).clamp_min(1e-30)


def dim_unnormalised(vectors):
    overlaps = (vectors @ vectors.transpose(-1, -2)) ** 2
    return vectors.norm(dim=-1) ** 2 / overlaps.sum(-1).clamp_min(1e-30)


def dim_both_normalised(vectors):
    unit = torch.nn.functional.normalize(vectors, dim=-1)
    return vectors.norm(dim=-1) ** 2 / ((unit @ unit.transpose(-1, -2)) ** 2).sum(-1).clamp_min(1e-30)


def dim_not_squared(vectors):
    unit = torch.nn.functional.normalize(vectors, dim=-1)
    return vectors.norm(dim=-1) ** 2 / (unit @ vectors.transpose(-1, -2)).abs().sum(-1).clamp_min(1e-30)


def dim_norm_numerator(vectors):
    unit = torch.nn.functional.normalize(vectors, dim=-1)
    return vectors.norm(dim=-1) / ((unit @ vectors.transpose(-1, -2)) ** 2).sum(-1).clamp_min(1e-30)


def dim_instance_mixing(vectors):
    unit = torch.nn.functional.normalize(vectors, dim=-1)
    overlaps = torch.einsum("kid,ljd->kij", unit, vectors) ** 2
    return vectors.norm(dim=-1) ** 2 / overlaps.sum(-1).clamp_min(1e-30)


def dim_nan_for_zero(vectors):
    unit = vectors / vectors.norm(dim=-1, keepdim=True)
    return vectors.norm(dim=-1) ** 2 / ((unit @ vectors.transpose(-1, -2)) ** 2).sum(-1)


def dim_wrong_axis(vectors):
    return compute_dimensionality(vectors.transpose(1, 2))


def dim_square_of_sum(vectors):
    unit = torch.nn.functional.normalize(vectors, dim=-1)
    return vectors.norm(dim=-1) ** 2 / (unit @ vectors.transpose(-1, -2)).sum(-1).pow(2).clamp_min(1e-30)


def dim_fourth_power(vectors):
    unit = torch.nn.functional.normalize(vectors, dim=-1)
    return vectors.norm(dim=-1) ** 4 / ((unit @ vectors.transpose(-1, -2)) ** 2).sum(-1).clamp_min(1e-30)


def dim_sum_over_i(vectors):
    unit = torch.nn.functional.normalize(vectors, dim=-1)
    return vectors.norm(dim=-1) ** 2 / ((unit @ vectors.transpose(-1, -2)) ** 2).sum(-2).clamp_min(1e-30)


def dim_mean_over_j(vectors):
    unit = torch.nn.functional.normalize(vectors, dim=-1)
    return vectors.norm(dim=-1) ** 2 / ((unit @ vectors.transpose(-1, -2)) ** 2).mean(-1).clamp_min(1e-30)


def dim_normalise_over_vectors(vectors):
    unit = torch.nn.functional.normalize(vectors, dim=1)
    return vectors.norm(dim=-1) ** 2 / ((unit @ vectors.transpose(-1, -2)) ** 2).sum(-1).clamp_min(1e-30)


def dim_first_instance(vectors):
    return compute_dimensionality(vectors[:1]).expand(vectors.shape[0], -1)


def dim_transposed_output(vectors):
    return compute_dimensionality(vectors).T


def dim_squeezed(vectors):
    return compute_dimensionality(vectors).squeeze()


def dim_in_place(vectors):
    norm = vectors.norm(dim=-1, keepdim=True)
    vectors /= norm.clamp_min(1e-12)  # normalises the caller's tensor in place
    overlaps = ((vectors @ (vectors * norm).transpose(-1, -2)) ** 2).sum(-1)
    return norm.squeeze(-1) ** 2 / overlaps.clamp_min(1e-30)


def dim_zero_is_one(vectors):
    out = compute_dimensionality(vectors)
    return torch.where(vectors.norm(dim=-1) == 0, torch.ones_like(out), out)


@pytest.mark.parametrize("impl", [compute_dimensionality, dim_gram, dim_loop, dim_normalize, dd.gram_dimensionality])
def test_compute_dimensionality_accepts(impl):
    assert_passes(checks.test_compute_dimensionality, impl)


DIM_MISTAKES = [
    (dim_self_excluded, "self_excluded"),
    (dim_unnormalised, "unnormalised"),
    (dim_both_normalised, "both_normalised"),
    (dim_not_squared, "not_squared"),
    (dim_square_of_sum, "square_of_sum"),
    (dim_norm_numerator, "numerator"),
    (dim_fourth_power, "numerator_power"),
    (dim_sum_over_i, "sum_axis"),
    (dim_mean_over_j, "mean_not_sum"),
    (dim_normalise_over_vectors, "normalise_axis"),
    (dim_instance_mixing, "instance_mixing"),
    (dim_first_instance, "first_instance"),
    (dim_transposed_output, "transposed_output"),
    (dim_wrong_axis, "vector_axis"),
    (dim_squeezed, "squeezed"),
    (dim_in_place, "modified_input"),
    (dim_nan_for_zero, "zero_vector"),
    (dim_zero_is_one, "zero_vector_value"),
]


@pytest.mark.parametrize(("impl", "code"), DIM_MISTAKES, ids=[f.__name__ for f, _ in DIM_MISTAKES])
def test_compute_dimensionality_rejects(impl, code):
    assert_fails(checks.test_compute_dimensionality, impl, code)


def test_compute_dimensionality_stub():
    assert_not_done(checks.test_compute_dimensionality, stub)
