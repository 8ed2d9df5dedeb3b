"""Proofs for the section 7 checkers: the reference and differently written correct variants pass,
realistic mistakes fail with the expected code, stubs are reported as not done."""

from __future__ import annotations

import math

import einops
import pytest
import torch
import torch.nn.functional as F

import tests.part7_open_problems as checks
from solutions import part7_open_problems as ref
from tests.proving import assert_fails, assert_not_done, assert_passes, stub

# --------------------------------------------------------------------------------------------
# generate_features
# --------------------------------------------------------------------------------------------
UNIFORM_RANGES = {"uniform": (0.0, 1.0), "uniform_half": (0.5, 1.0), "signed_uniform": (-1.0, 1.0)}


def _values(kind, shape, device):
    """Correct values of a kind (written differently from the reference: a range table and uniform_)."""
    if kind in UNIFORM_RANGES:
        return torch.empty(shape, device=device).uniform_(*UNIFORM_RANGES[kind])
    if kind == "discrete":
        return torch.randint(1, 4, shape, device=device).float()
    return torch.ones(shape, device=device)  # constant, binary


def gen_reference(p, batch_size, values):
    return ref.generate_features(p, batch_size, values)


def gen_bernoulli(p, batch_size, values):
    """Presence via torch.bernoulli, values drawn by kind with a match statement."""
    present = torch.bernoulli(p.expand(batch_size, *p.shape)).bool()
    shape = present.shape
    match values:
        case "uniform":
            v = torch.rand(shape, device=p.device)
        case "uniform_half":
            v = torch.empty(shape, device=p.device).uniform_(0.5, 1.0)
        case "signed_uniform":
            v = torch.rand(shape, device=p.device).mul(2).sub(1)
        case "discrete":
            v = torch.randint(1, 4, shape, device=p.device).to(torch.float32)
        case "constant" | "binary":
            v = torch.ones(shape, device=p.device)
        case _:
            raise ValueError(values)
    return v * present


def gen_multinomial_discrete(p, batch_size, values):
    """Discrete values by indexing a table; presence by comparing with 1 - rand; signs by a coin."""
    shape = (batch_size, *p.shape)
    present = (1 - torch.rand(shape, device=p.device)) <= p
    if values == "discrete":
        table = torch.tensor([1.0, 2.0, 3.0], device=p.device)
        v = table[torch.randint(0, 3, shape, device=p.device)]
    elif values == "uniform_half":
        v = 1 - 0.5 * torch.rand(shape, device=p.device)
    elif values == "uniform":
        v = torch.rand(shape, device=p.device)
    elif values == "signed_uniform":
        sign = torch.randint(0, 2, shape, device=p.device) * 2 - 1
        v = sign * torch.rand(shape, device=p.device)
    else:
        v = torch.ones(shape, device=p.device)
    return torch.where(present, v, torch.zeros((), device=p.device))


def gen_numpy_style_loop(p, batch_size, values):
    """One instance at a time, concatenated."""
    out = []
    for k in range(p.shape[0]):
        shape = (batch_size, p.shape[1])
        present = torch.rand(shape, device=p.device) < p[k]
        out.append(present.float() * _values(values, shape, p.device))
    return torch.stack(out, dim=1)


def gen_bug_greater(p, batch_size, values):
    shape = (batch_size, *p.shape)
    return torch.where(torch.rand(shape) > p, _values(values, shape, p.device), 0.0)


def gen_bug_randint_upper(p, batch_size, values):
    shape = (batch_size, *p.shape)
    v = torch.randint(1, 3, shape).float() if values == "discrete" else _values(values, shape, p.device)
    return torch.where(torch.rand(shape) < p, v, 0.0)


def gen_bug_randint_zero(p, batch_size, values):
    shape = (batch_size, *p.shape)
    v = torch.randint(0, 3, shape).float() if values == "discrete" else _values(values, shape, p.device)
    return torch.where(torch.rand(shape) < p, v, 0.0)


def gen_bug_half_scaled(p, batch_size, values):
    shape = (batch_size, *p.shape)
    v = 0.5 * torch.rand(shape) if values == "uniform_half" else _values(values, shape, p.device)
    return torch.where(torch.rand(shape) < p, v, 0.0)


def gen_bug_half_shift(p, batch_size, values):
    shape = (batch_size, *p.shape)
    v = torch.rand(shape) + 0.5 if values == "uniform_half" else _values(values, shape, p.device)
    return torch.where(torch.rand(shape) < p, v, 0.0)


def gen_bug_reused_draw(p, batch_size, values):
    shape = (batch_size, *p.shape)
    r = torch.rand(shape)
    v = r if values == "uniform" else _values(values, shape, p.device)
    return torch.where(r < p, v, 0.0)


def gen_bug_constant_ignored(p, batch_size, values):
    shape = (batch_size, *p.shape)
    kind = "uniform" if values == "constant" else values
    return torch.where(torch.rand(shape) < p, _values(kind, shape, p.device), 0.0)


def gen_bug_shared_presence(p, batch_size, values):
    shape = (batch_size, *p.shape)
    present = torch.rand(batch_size, p.shape[0], 1) < p  # one draw per example and instance
    return torch.where(present, _values(values, shape, p.device), 0.0)


def gen_bug_first_instance(p, batch_size, values):
    shape = (batch_size, *p.shape)
    return torch.where(torch.rand(shape) < p[0], _values(values, shape, p.device), 0.0)


def gen_bug_float64(p, batch_size, values):
    return ref.generate_features(p, batch_size, values).double()


def gen_bug_old_kinds_only(p, batch_size, values):
    """Written for four kinds: 'binary' and 'signed_uniform' raise."""
    if values not in ("uniform", "uniform_half", "discrete", "constant"):
        raise ValueError(f"unknown values {values!r}")
    return ref.generate_features(p, batch_size, values)


def gen_bug_binary_as_uniform(p, batch_size, values):
    """An if/elif chain whose last branch is U[0, 1], so 'binary' draws uniform values."""
    kind = "uniform" if values == "binary" else values
    return ref.generate_features(p, batch_size, kind)


def gen_bug_binary_bernoulli_values(p, batch_size, values):
    """'binary' read as values in {0, 1}: half the present features get 0 and look absent."""
    shape = (batch_size, *p.shape)
    v = torch.randint(0, 2, shape).float() if values == "binary" else _values(values, shape, p.device)
    return torch.where(torch.rand(shape) < p, v, 0.0)


def gen_bug_signed_unshifted(p, batch_size, values):
    """U[0, 2] instead of U[-1, 1]: scaled but not shifted."""
    shape = (batch_size, *p.shape)
    v = 2 * torch.rand(shape) if values == "signed_uniform" else _values(values, shape, p.device)
    return torch.where(torch.rand(shape) < p, v, 0.0)


def gen_bug_signed_half_width(p, batch_size, values):
    """U[-0.5, 0.5]: shifted but not scaled (in range, right mean, wrong spread)."""
    shape = (batch_size, *p.shape)
    v = torch.rand(shape) - 0.5 if values == "signed_uniform" else _values(values, shape, p.device)
    return torch.where(torch.rand(shape) < p, v, 0.0)


def gen_bug_signed_negative_only(p, batch_size, values):
    """U[-1, 0]: only the negative half."""
    shape = (batch_size, *p.shape)
    v = -torch.rand(shape) if values == "signed_uniform" else _values(values, shape, p.device)
    return torch.where(torch.rand(shape) < p, v, 0.0)


def gen_bug_signed_as_ones(p, batch_size, values):
    """A match statement whose default case is 1, so 'signed_uniform' gives constant values."""
    kind = "constant" if values == "signed_uniform" else values
    return ref.generate_features(p, batch_size, kind)


def gen_bug_signed_reused_draw(p, batch_size, values):
    shape = (batch_size, *p.shape)
    r = torch.rand(shape)
    v = 2 * r - 1 if values == "signed_uniform" else _values(values, shape, p.device)
    return torch.where(r < p, v, 0.0)


def _presence_bug(mask_of):
    """Values as they should be; presence decided by `mask_of(p, batch_size)` (a realistic wrong mask)."""

    def impl(p, batch_size, values):
        shape = (batch_size, *p.shape)
        return torch.where(mask_of(p, batch_size), _values(values, shape, p.device), 0.0)

    return impl


def _values_bug(kind, draw):
    """Presence as it should be; values of `kind` drawn by `draw(shape)` (the other kinds right)."""

    def impl(p, batch_size, values):
        shape = (batch_size, *p.shape)
        v = draw(shape).expand(shape) if values == kind else _values(values, shape, p.device)
        return torch.where(torch.rand(shape) < p, v, 0.0)

    return impl


gen_bug_shared_over_instances = _presence_bug(lambda p, b: torch.rand(b, 1, p.shape[1]) < p)
gen_bug_shared_over_batch = _presence_bug(lambda p, b: (torch.rand(1, *p.shape) < p).expand(b, -1, -1))
gen_bug_p_squared = _presence_bug(lambda p, b: (torch.rand(b, *p.shape) < p) & (torch.rand(b, *p.shape) < p))
gen_bug_mean_probability = _presence_bug(lambda p, b: torch.rand(b, *p.shape) < p.mean())
gen_bug_first_feature = _presence_bug(lambda p, b: torch.rand(b, *p.shape) < p[:, :1])
gen_bug_values_shared_over_features = _values_bug("uniform", lambda shape: torch.rand(*shape[:-1], 1))
gen_bug_values_shared_over_instances = _values_bug(
    "signed_uniform", lambda shape: -1 + 2 * torch.rand(shape[0], 1, shape[2])
)
gen_bug_values_shared_over_batch = _values_bug("uniform_half", lambda shape: 0.5 + 0.5 * torch.rand(1, *shape[1:]))
gen_bug_signed_normal = _values_bug("signed_uniform", lambda shape: torch.randn(shape))
gen_bug_half_ignored = _values_bug("uniform_half", lambda shape: torch.rand(shape))
gen_bug_discrete_continuous = _values_bug("discrete", lambda shape: 1 + 2 * torch.rand(shape))
gen_bug_discrete_four = _values_bug("discrete", lambda shape: torch.randint(1, 5, shape).float())
gen_bug_discrete_weighted = _values_bug(
    "discrete",
    lambda shape: (
        1.0 + torch.multinomial(torch.tensor([1.0, 2.0, 3.0]), math.prod(shape), replacement=True).reshape(shape)
    ),
)


def gen_bug_never_present(p, batch_size, values):
    return torch.zeros(batch_size, *p.shape, device=p.device)


@pytest.mark.parametrize("impl", [gen_reference, gen_bernoulli, gen_multinomial_discrete, gen_numpy_style_loop])
def test_generate_features_accepts(impl):
    assert_passes(checks.test_generate_features, impl)


GEN_BUGS = [
    (gen_bug_greater, "rand_gt_p"),
    (gen_bug_randint_upper, "randint_upper"),
    (gen_bug_randint_zero, "randint_zero"),
    (gen_bug_half_scaled, "range"),
    (gen_bug_half_shift, "range"),
    (gen_bug_half_ignored, "range"),
    (gen_bug_reused_draw, "reused_draw"),
    (gen_bug_constant_ignored, "constant"),
    (gen_bug_shared_presence, "shared_over_features"),
    (gen_bug_shared_over_instances, "shared_over_instances"),
    (gen_bug_shared_over_batch, "shared_over_batch"),
    (gen_bug_first_instance, "first_instance"),
    (gen_bug_first_feature, "first_feature"),
    (gen_bug_mean_probability, "mean_probability"),
    (gen_bug_p_squared, "p_squared"),
    (gen_bug_float64, "dtype"),
    (gen_bug_old_kinds_only, "unknown_kind"),
    (gen_bug_binary_as_uniform, "binary"),
    (gen_bug_binary_bernoulli_values, "value_zero"),
    (gen_bug_signed_unshifted, "range"),
    (gen_bug_signed_normal, "range"),
    (gen_bug_signed_half_width, "value_spread"),
    (gen_bug_signed_negative_only, "value_mean"),
    (gen_bug_signed_as_ones, "not_random"),
    (gen_bug_signed_reused_draw, "reused_draw"),
    (gen_bug_values_shared_over_features, "values_shared_over_features"),
    (gen_bug_values_shared_over_batch, "values_shared_over_batch"),
    (gen_bug_values_shared_over_instances, "values_shared_over_instances"),
    (gen_bug_discrete_continuous, "discrete_values"),
    (gen_bug_discrete_four, "discrete_values"),
    (gen_bug_discrete_weighted, "discrete_frequency"),
    (gen_bug_never_present, "never_present"),
]


@pytest.mark.parametrize(("impl", "code"), GEN_BUGS, ids=[f"{i.__name__}-{c}" for i, c in GEN_BUGS])
def test_generate_features_rejects(impl, code):
    assert_fails(checks.test_generate_features, impl, code)


def test_generate_features_hints_name_the_mistake():
    err = assert_fails(checks.test_generate_features, gen_bug_old_kinds_only, "unknown_kind")
    assert "'signed_uniform'" in err.message and "another name for 'constant'" in err.hint
    err = assert_fails(checks.test_generate_features, gen_bug_binary_bernoulli_values, "value_zero")
    assert "p/2" in err.hint
    for impl in (gen_bug_reused_draw, gen_bug_signed_reused_draw):
        assert "decided presence" in assert_fails(checks.test_generate_features, impl, "reused_draw").hint
    err = assert_fails(checks.test_generate_features, gen_bug_signed_negative_only, "value_mean")
    assert "-1 + 2 * torch.rand" in err.hint and "decided presence" not in err.hint
    # the value distribution that was drawn is named
    assert "standard normal" in assert_fails(checks.test_generate_features, gen_bug_signed_normal, "range").message
    assert "U[0, 1]" in assert_fails(checks.test_generate_features, gen_bug_half_ignored, "range").message
    assert "U[0, 2]" in assert_fails(checks.test_generate_features, gen_bug_signed_unshifted, "range").message


def test_generate_features_checks_every_kind_the_lab_uses():
    from utils.part7_open_problems import VALUE_KINDS

    assert set(checks.KINDS) == set(VALUE_KINDS)


def test_generate_features_error_unrelated_to_the_kind_keeps_the_learners_traceback():
    def buggy(p, batch_size, values):
        raise ValueError("shapes don't match")

    err = assert_fails(checks.test_generate_features, buggy, "exception")
    assert "buggy" in err.message


def test_generate_features_stub():
    assert_not_done(checks.test_generate_features, stub)


# --------------------------------------------------------------------------------------------
# compute_target
# --------------------------------------------------------------------------------------------
def target_reference(features, target):
    return ref.compute_target(features, target)


def target_rearrange(features, target):
    """Pairs via einops, AND as a product and OR as a max (right on binary inputs only: rejected, heldout3)."""
    if target == "identity":
        return features.clone()
    if target == "abs":
        return torch.abs(features)
    if target == "square":
        return features * features
    if target == "argmax":
        labels = features.argmax(dim=-1)
        labels[(features == 0).all(-1)] = -1
        return labels
    pairs = einops.rearrange(features, "... (pair two) -> ... pair two", two=2)
    if target == "max_pairs":
        return pairs.max(-1).values
    if target == "and_pairs":
        return pairs[..., 0] * pairs[..., 1]
    return pairs.amax(-1)


def target_min_clamp(features, target):
    """AND as a min, OR as a clamped sum, max via relu (right on binary inputs only: rejected, heldout3)."""
    a, b = features[..., ::2], features[..., 1::2]
    if target == "max_pairs":
        return b + F.relu(a - b)
    if target == "and_pairs":
        return torch.minimum(a, b)
    if target == "or_pairs":
        return (a + b).clamp(max=1)
    if target == "argmax":
        return torch.where(
            features.abs().sum(-1) > 0, features.argmax(-1), torch.full_like(features[..., 0], -1).long()
        )
    return ref.compute_target(features, target)


def target_view(features, target):
    """Pairs via view/unbind; square via pow."""
    if target in ("max_pairs", "and_pairs", "or_pairs"):
        a, b = features.view(*features.shape[:-1], -1, 2).unbind(-1)
        if target == "max_pairs":
            return torch.where(a > b, a, b)
        gate = torch.logical_and(a != 0, b != 0) if target == "and_pairs" else torch.logical_or(a != 0, b != 0)
        return gate.float()
    if target == "square":
        return features.pow(2)
    return ref.compute_target(features, target)


def target_bug_or_sum(features, target):
    if target == "or_pairs":
        return features[..., 0::2] + features[..., 1::2]
    return ref.compute_target(features, target)


def target_bug_layout(features, target):
    if target in ("max_pairs", "and_pairs", "or_pairs"):
        half = features.shape[-1] // 2
        a, b = features[..., :half], features[..., half:]
        if target == "max_pairs":
            return torch.maximum(a, b)
        gate = (a != 0) & (b != 0) if target == "and_pairs" else (a != 0) | (b != 0)
        return gate.to(features.dtype)
    return ref.compute_target(features, target)


def target_bug_argmax_empty(features, target):
    if target == "argmax":
        return features.argmax(-1)
    return ref.compute_target(features, target)


def target_bug_square_abs(features, target):
    if target == "square":
        return features.abs()
    return ref.compute_target(features, target)


def target_bug_max_abs(features, target):
    if target == "max_pairs":
        return torch.maximum(features[..., 0::2].abs(), features[..., 1::2].abs())
    return ref.compute_target(features, target)


def target_bug_bool(features, target):
    if target == "and_pairs":
        return (features[..., 0::2] != 0) & (features[..., 1::2] != 0)
    return ref.compute_target(features, target)


def target_bug_in_place(features, target):
    if target == "abs":
        return features.abs_()
    return ref.compute_target(features, target)


def target_bug_argmax_float(features, target):
    if target == "argmax":
        return torch.where(features.ne(0).any(-1), features.argmax(-1), -1).float()
    return ref.compute_target(features, target)


def target_bug_argmax_axis(features, target):
    if target == "argmax":
        return torch.where(features.ne(0).any(-2), features.argmax(-2), -1)
    return ref.compute_target(features, target)


def _target_bug(target_name, fn):
    """The reference, except for one target computed by `fn(features)`."""

    def impl(features, target):
        return fn(features) if target == target_name else ref.compute_target(features, target)

    return impl


target_bug_abs_relu = _target_bug("abs", lambda x: torch.relu(x))
target_bug_square_signed = _target_bug("square", lambda x: x * x.abs())
target_bug_max_min = _target_bug("max_pairs", lambda x: torch.minimum(x[..., 0::2], x[..., 1::2]))
target_bug_and_or = _target_bug("and_pairs", lambda x: ((x[..., 0::2] != 0) | (x[..., 1::2] != 0)).float())
target_bug_or_xor = _target_bug("or_pairs", lambda x: ((x[..., 0::2] != 0) ^ (x[..., 1::2] != 0)).float())
target_bug_or_and = _target_bug("or_pairs", lambda x: x[..., 0::2] * x[..., 1::2])
target_bug_argmin = _target_bug("argmax", lambda x: torch.where(x.ne(0).any(-1), x.argmin(-1), -1))
target_bug_one_based = _target_bug("argmax", lambda x: torch.where(x.ne(0).any(-1), x.argmax(-1) + 1, -1))
target_bug_identity_abs = _target_bug("identity", lambda x: x.abs())
target_bug_max_sum = _target_bug("max_pairs", lambda x: x[..., 0::2] + x[..., 1::2])
target_bug_pairs_3d = _target_bug("max_pairs", lambda x: torch.maximum(x[:, :, 0::2], x[:, :, 1::2]))
target_bug_argmax_dim2 = _target_bug("argmax", lambda x: torch.where(x.ne(0).any(2), x.argmax(2), -1))
target_bug_square_double = _target_bug("square", lambda x: 2 * x)


@pytest.mark.parametrize("impl", [target_reference, target_view])  # rearrange/min_clamp: heldout3
def test_compute_target_accepts(impl):
    assert_passes(checks.test_compute_target, impl)


TARGET_BUGS = [
    (target_bug_or_sum, "or_sum"),
    (target_bug_layout, "pair_layout"),
    (target_bug_argmax_empty, "argmax_empty"),
    (target_bug_square_abs, "square_abs"),
    (target_bug_max_abs, "max_abs"),
    (target_bug_bool, "dtype"),
    (target_bug_in_place, "in_place"),
    (target_bug_argmax_float, "dtype"),
    (target_bug_argmax_axis, "shape"),
    (target_bug_abs_relu, "abs_relu"),
    (target_bug_square_signed, "square_signed"),
    (target_bug_max_min, "min_pairs"),
    (target_bug_and_or, "and_is_or"),
    (target_bug_or_xor, "xor"),
    (target_bug_or_and, "or_is_and"),
    (target_bug_argmin, "argmin"),
    (target_bug_one_based, "argmax_one_based"),
    (target_bug_identity_abs, "identity_abs"),
    (target_bug_max_sum, "max_sum"),
    (target_bug_pairs_3d, "fixed_axis"),
    (target_bug_argmax_dim2, "fixed_axis"),
    (target_bug_square_double, "square_double"),
]


@pytest.mark.parametrize(("impl", "code"), TARGET_BUGS, ids=[f"{i.__name__}-{c}" for i, c in TARGET_BUGS])
def test_compute_target_rejects(impl, code):
    assert_fails(checks.test_compute_target, impl, code)


def test_compute_target_stub():
    assert_not_done(checks.test_compute_target, stub)


# --------------------------------------------------------------------------------------------
# cross_entropy_loss
# --------------------------------------------------------------------------------------------
def ce_reference(logits, labels, importance):
    return ref.cross_entropy_loss(logits, labels, importance)


def ce_functional(logits, labels, importance):
    """F.cross_entropy per example with ignore_index, weighted by hand."""
    batch, n_inst, n_classes = logits.shape
    nll = F.cross_entropy(logits.reshape(-1, n_classes), labels.reshape(-1), ignore_index=-1, reduction="none").reshape(
        batch, n_inst
    )
    valid = labels >= 0
    weights = torch.where(valid, importance[torch.arange(n_inst), labels.clamp(min=0)], 0.0)
    return ((weights * nll).sum(0) / valid.sum(0).clamp(min=1)).sum()


def ce_loop(logits, labels, importance):
    """One instance at a time with one-hot labels."""
    total = logits.new_zeros(())
    for k in range(logits.shape[1]):
        mask = labels[:, k] != -1
        if mask.any():
            one_hot = F.one_hot(labels[mask, k], logits.shape[-1]).to(logits.dtype)
            log_p = torch.log(torch.softmax(logits[mask, k], dim=-1))
            total = total + (-(one_hot * log_p * importance[k]).sum(-1)).mean()
    return total


def ce_logsumexp(logits, labels, importance):
    """−log softmax as logsumexp − logit, unlabelled rows zeroed by multiplication."""
    valid = (labels != -1).to(logits.dtype)
    idx = labels.clamp(min=0).unsqueeze(-1)
    nll = torch.logsumexp(logits, -1) - logits.gather(-1, idx).squeeze(-1)
    w = torch.gather(importance.unsqueeze(0).expand_as(logits), -1, idx).squeeze(-1)
    return einops.reduce(w * nll * valid, "b i -> i", "sum").div(valid.sum(0).clamp(min=1)).sum()


def _ce(nll_of=None, weight_of=None, reduce=None, post=None):
    """The reference with one piece written wrong: `nll_of(logits, labels)`, `weight_of(importance, logits,
    labels)`, `reduce(term, valid)` (from per-example terms to the loss) or `post(loss)`."""

    def impl(logits, labels, importance):
        valid = labels != -1
        idx = labels.clamp(min=0)[..., None]
        nll = nll_of(logits, idx) if nll_of else -logits.log_softmax(-1).gather(-1, idx)[..., 0]
        w = weight_of(importance, logits, idx) if weight_of else importance.expand_as(logits).gather(-1, idx)[..., 0]
        term = torch.where(valid, w * nll, 0.0)
        loss = reduce(term, valid) if reduce else (term.sum(0) / valid.sum(0).clamp(min=1)).sum()
        return post(loss) if post else loss

    return impl


ce_bug_instances = _ce(reduce=lambda t, v: (t.sum(0) / v.sum(0).clamp(min=1)).mean())
ce_bug_no_importance = _ce(weight_of=lambda imp, lg, idx: torch.ones(idx.shape[:-1]))
ce_bug_denominator = _ce(reduce=lambda t, v: (t.sum(0) / t.shape[0]).sum())
ce_bug_no_label = _ce(reduce=lambda t, v: t.mean(0).sum(), nll_of=None)
ce_bug_softmax_axis = _ce(nll_of=lambda lg, idx: -lg.log_softmax(1).gather(-1, idx)[..., 0])
ce_bug_softmax_batch = _ce(nll_of=lambda lg, idx: -lg.log_softmax(0).gather(-1, idx)[..., 0])
ce_bug_no_log = _ce(nll_of=lambda lg, idx: -lg.softmax(-1).gather(-1, idx)[..., 0])
ce_bug_no_softmax = _ce(nll_of=lambda lg, idx: -lg.gather(-1, idx)[..., 0])
ce_bug_global_mean = _ce(reduce=lambda t, v: t.sum() / v.sum())
ce_bug_sum_examples = _ce(reduce=lambda t, v: t.sum())
ce_bug_importance_of_prediction = _ce(
    weight_of=lambda imp, lg, idx: imp.expand_as(lg).gather(-1, lg.argmax(-1, keepdim=True))[..., 0]
)
ce_bug_importance_row0 = _ce(weight_of=lambda imp, lg, idx: imp[0][idx[..., 0]])
ce_bug_detached = _ce(post=lambda loss: loss.detach())
ce_bug_python_float = _ce(post=lambda loss: loss.item())
ce_bug_per_instance = _ce(reduce=lambda t, v: t.sum(0) / v.sum(0).clamp(min=1))


def ce_bug_no_label_as_class0(logits, labels, importance):
    """Unlabelled rows kept, with the -1 clamped to class 0 (the `valid` mask forgotten)."""
    idx = labels.clamp(min=0)[..., None]
    nll = -logits.log_softmax(-1).gather(-1, idx)[..., 0]
    return (importance.expand_as(logits).gather(-1, idx)[..., 0] * nll).mean(0).sum()


def ce_bug_pytorch_weight(logits, labels, importance):
    """F.cross_entropy's weight argument: a weighted mean (divides by the sum of weights)."""
    return sum(
        F.cross_entropy(logits[:, k], labels[:, k], weight=importance[k], ignore_index=-1)
        for k in range(logits.shape[1])
    )


def ce_bug_nan_when_empty(logits, labels, importance):
    valid = labels != -1
    log_p = logits.log_softmax(-1).gather(-1, labels.clamp(min=0)[..., None])[..., 0]
    w = importance.expand_as(logits).gather(-1, labels.clamp(min=0)[..., None])[..., 0]
    return (torch.where(valid, -w * log_p, 0.0).sum(0) / valid.sum(0)).sum()


def ce_bug_no_ignore(logits, labels, importance):
    return F.cross_entropy(logits.flatten(0, 1), labels.flatten())


@pytest.mark.parametrize("impl", [ce_reference, ce_functional, ce_loop, ce_logsumexp])
def test_cross_entropy_accepts(impl):
    assert_passes(checks.test_cross_entropy_loss, impl)


CE_BUGS = [
    (ce_bug_instances, "instances"),
    (ce_bug_no_importance, "importance"),
    (ce_bug_pytorch_weight, "weighted_mean"),
    (ce_bug_denominator, "denominator"),
    (ce_bug_no_label_as_class0, "no_label"),
    (ce_bug_softmax_axis, "softmax_axis"),
    (ce_bug_softmax_batch, "softmax_batch"),
    (ce_bug_no_log, "no_log"),
    (ce_bug_no_softmax, "no_softmax"),
    (ce_bug_global_mean, "global_mean"),
    (ce_bug_sum_examples, "sum_examples"),
    (ce_bug_importance_of_prediction, "importance_of_prediction"),
    (ce_bug_importance_row0, "importance_first_instance"),
    (ce_bug_nan_when_empty, "not_finite"),
    (ce_bug_no_ignore, "exception"),
    (ce_bug_detached, "no_grad"),
    (ce_bug_python_float, "not_tensor"),
    (ce_bug_per_instance, "not_scalar"),
]


@pytest.mark.parametrize(("impl", "code"), CE_BUGS, ids=[f"{i.__name__}-{c}" for i, c in CE_BUGS])
def test_cross_entropy_rejects(impl, code):
    assert_fails(checks.test_cross_entropy_loss, impl, code)


def test_cross_entropy_stub():
    assert_not_done(checks.test_cross_entropy_loss, stub)


# --------------------------------------------------------------------------------------------
# basis_alignment
# --------------------------------------------------------------------------------------------
def align_reference(W):
    return ref.basis_alignment(W)


def align_normalise_first(W):
    """Normalise the columns, then take the largest |entry|; zero columns stay 0 through nan_to_num."""
    W_hat = W / W.norm(dim=1, keepdim=True)
    return torch.nan_to_num(W_hat.abs().max(dim=1).values, nan=0.0)


def align_einsum(W):
    norms = torch.einsum("idf,idf->if", W, W).sqrt()
    top = einops.reduce(W.abs(), "inst d feats -> inst feats", "max")
    return torch.where(norms == 0, torch.zeros_like(norms), top / torch.where(norms == 0, 1.0, norms))


def align_linf_over_l2(W):
    return torch.linalg.vector_norm(W, ord=float("inf"), dim=1) / torch.linalg.vector_norm(W, dim=1).clamp(min=1e-30)


def align_bug_no_abs(W):
    return torch.where(W.norm(dim=1) > 0, W.amax(1) / W.norm(dim=1).clamp(min=1e-12), 0.0)


def align_bug_not_normalised(W):
    return W.abs().amax(1)


def align_bug_norm_axis(W):
    """Normalises over the feature axis instead of the hidden axis."""
    return torch.where(W.norm(dim=1) > 0, (W / W.norm(dim=-1, keepdim=True)).abs().amax(1), 0.0)


def align_bug_sum(W):
    return torch.where(W.norm(dim=1) > 0, W.abs().sum(1) / W.norm(dim=1).clamp(min=1e-12), 0.0)


def align_bug_nan(W):
    return W.abs().amax(1) / W.norm(dim=1)


def align_bug_wrong_axis(W):
    return W.abs().amax(-1) / W.norm(dim=-1)


def _align_bug(fn):
    """`fn(W)` for the non-zero features, 0 for the zero one (so the zero-column rule is not what fails)."""
    return lambda W: torch.where(W.norm(dim=1) > 0, fn(W), 0.0)


align_bug_mean = _align_bug(lambda W: W.abs().mean(1) / W.norm(dim=1).clamp(min=1e-12))
align_bug_min = _align_bug(lambda W: W.abs().amin(1) / W.norm(dim=1).clamp(min=1e-12))
align_bug_l1 = _align_bug(lambda W: W.abs().amax(1) / W.abs().sum(1).clamp(min=1e-12))
align_bug_squared_norm = _align_bug(lambda W: W.abs().amax(1) / W.pow(2).sum(1).clamp(min=1e-12))
align_bug_squares = _align_bug(lambda W: W.pow(2).amax(1) / W.pow(2).sum(1).clamp(min=1e-12))
align_bug_instance_norm = _align_bug(lambda W: W.abs().amax(1) / W.flatten(1).norm(dim=1, keepdim=True))


def align_bug_zero_is_one(W):
    return W.abs().amax(1) / W.norm(dim=1).clamp(min=1e-12) + (W.norm(dim=1) == 0).float()


def align_bug_argmax(W):
    return W.abs().argmax(1)


def align_bug_in_place(W):
    W.abs_()
    return torch.where(W.norm(dim=1) > 0, W.amax(1) / W.norm(dim=1).clamp(min=1e-12), 0.0)


@pytest.mark.parametrize("impl", [align_reference, align_normalise_first, align_einsum, align_linf_over_l2])
def test_basis_alignment_accepts(impl):
    assert_passes(checks.test_basis_alignment, impl)


ALIGN_BUGS = [
    (align_bug_no_abs, "abs"),
    (align_bug_not_normalised, "normalise"),
    (align_bug_norm_axis, "norm_axis"),
    (align_bug_sum, "max"),
    (align_bug_nan, "not_finite"),
    (align_bug_wrong_axis, "shape"),
    (align_bug_mean, "mean"),
    (align_bug_min, "min"),
    (align_bug_l1, "l1_norm"),
    (align_bug_squared_norm, "squared_norm"),
    (align_bug_squares, "squared"),
    (align_bug_instance_norm, "instance_norm"),
    (align_bug_zero_is_one, "zero_norm"),
    (align_bug_argmax, "dtype"),
    (align_bug_in_place, "in_place"),
]


@pytest.mark.parametrize(("impl", "code"), ALIGN_BUGS, ids=[f"{i.__name__}-{c}" for i, c in ALIGN_BUGS])
def test_basis_alignment_rejects(impl, code):
    assert_fails(checks.test_basis_alignment, impl, code)


def test_basis_alignment_stub():
    assert_not_done(checks.test_basis_alignment, stub)


def test_every_checker_passes_the_reference():
    """Each checker accepts the reference (their speed is measured by `make bench`, not asserted here)."""
    for check, impl in [
        (checks.test_generate_features, ref.generate_features),
        (checks.test_compute_target, ref.compute_target),
        (checks.test_cross_entropy_loss, ref.cross_entropy_loss),
        (checks.test_basis_alignment, ref.basis_alignment),
    ]:
        assert_passes(check, impl)


# Held-out mistakes (a round the catalogue had not seen), one line each.
def _gen_p(table_of):
    def gen(p, batch_size, values):
        present = torch.rand(batch_size, *p.shape, device=p.device) < table_of(p)
        return torch.where(present, _values(values, present.shape, p.device), 0.0)

    return gen


def _target(name, fn):
    return lambda x, target: fn(x) if target == name else target_reference(x, target)


def _ce_counted(logits, labels, importance):
    """Unlabelled rows clamped to class 0 and kept in the sum; the denominator counts labelled rows only."""
    idx = labels.clamp(min=0)[..., None]
    term = -importance.expand_as(logits).gather(-1, idx)[..., 0] * logits.log_softmax(-1).gather(-1, idx)[..., 0]
    return (term.sum(0) / (labels >= 0).sum(0).clamp(min=1)).sum()


HELD_OUT = [
    (checks.test_cross_entropy_loss, _ce_counted, "no_label_counted"),
    (checks.test_generate_features, _gen_p(lambda p: p.mean(0)), "instance_mean_probability"),
    (checks.test_generate_features, _gen_p(lambda p: p.mean(1, keepdim=True)), "feature_mean_probability"),
    (checks.test_compute_target, _target("max_pairs", lambda x: (x[..., 0::2] + x[..., 1::2]) / 2), "mean_pairs"),
    (
        checks.test_compute_target,
        _target("argmax", lambda x: torch.where((x != 0).all(-1), x.argmax(-1), -1)),
        "argmax_all_present",
    ),
    (checks.test_compute_target, _target("argmax", lambda x: x.argmax(-1, keepdim=True)), "keepdim"),
    (checks.test_cross_entropy_loss, lambda lg, lb, imp: ce_reference(lg * imp, lb, imp), "importance_on_logits"),
    (
        checks.test_basis_alignment,
        lambda W: W.abs().amax(1) / W.norm(dim=1).mean(-1, keepdim=True),
        "feature_mean_norm",
    ),
    (checks.test_basis_alignment, lambda W: W.abs().max(dim=1)[1] / W.norm(dim=1).clamp(min=1e-12), "argmax_indices"),
]


@pytest.mark.parametrize(("check", "impl", "code"), HELD_OUT, ids=[c for _, _, c in HELD_OUT])
def test_held_out_mistakes_are_named(check, impl, code):
    assert_fails(check, impl, code)
