"""Proofs for the section 7 checkers: the reference and differently written correct variants pass,
realistic mistakes fail with the expected code, stubs are reported as not done."""

from __future__ import annotations

import einops
import pytest
import torch
import torch.nn.functional as F

import tests.part7_open_problems as checks
from solutions import part7_open_problems as ref
from tests.proving import assert_fails, assert_not_done, assert_passes


def stub(*args, **kwargs):
    raise NotImplementedError


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


@pytest.mark.parametrize("impl", [gen_reference, gen_bernoulli, gen_multinomial_discrete, gen_numpy_style_loop])
def test_generate_features_accepts(impl):
    assert_passes(checks.test_generate_features, impl)


@pytest.mark.parametrize(
    ("impl", "code"),
    [
        (gen_bug_greater, "presence"),
        (gen_bug_randint_upper, "discrete"),
        (gen_bug_randint_zero, "discrete"),
        (gen_bug_half_scaled, "range"),
        (gen_bug_half_shift, "range"),
        (gen_bug_reused_draw, "value_mean"),
        (gen_bug_constant_ignored, "constant"),
        (gen_bug_shared_presence, "independence"),
        (gen_bug_first_instance, "presence"),
        (gen_bug_float64, "dtype"),
        (gen_bug_old_kinds_only, "unknown_kind"),
        (gen_bug_binary_as_uniform, "binary"),
        (gen_bug_binary_bernoulli_values, "presence"),
        (gen_bug_signed_unshifted, "range"),
        (gen_bug_signed_half_width, "value_spread"),
        (gen_bug_signed_negative_only, "value_mean"),
        (gen_bug_signed_as_ones, "not_random"),
        (gen_bug_signed_reused_draw, "value_mean"),
    ],
)
def test_generate_features_rejects(impl, code):
    assert_fails(checks.test_generate_features, impl, code)


def test_generate_features_hints_name_the_mistake():
    err = assert_fails(checks.test_generate_features, gen_bug_old_kinds_only, "unknown_kind")
    assert "'signed_uniform'" in err.message and "another name for 'constant'" in err.hint
    err = assert_fails(checks.test_generate_features, gen_bug_binary_bernoulli_values, "presence")
    assert "p/2" in err.hint
    for impl in (gen_bug_reused_draw, gen_bug_signed_reused_draw):
        assert "decided presence" in assert_fails(checks.test_generate_features, impl, "value_mean").hint
    err = assert_fails(checks.test_generate_features, gen_bug_signed_negative_only, "value_mean")
    assert "-1 + 2 * torch.rand" in err.hint and "decided presence" not in err.hint


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
    """Pairs via einops, AND as a product and OR as a max (right on binary inputs)."""
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
    """AND as a min, OR as a clamped sum, max via relu."""
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
        return checks._pair_op(features[..., :half], features[..., half:], target)
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


@pytest.mark.parametrize("impl", [target_reference, target_rearrange, target_min_clamp, target_view])
def test_compute_target_accepts(impl):
    assert_passes(checks.test_compute_target, impl)


@pytest.mark.parametrize(
    ("impl", "code"),
    [
        (target_bug_or_sum, "or_pairs"),
        (target_bug_layout, "pair_layout"),
        (target_bug_argmax_empty, "argmax_empty"),
        (target_bug_square_abs, "square"),
        (target_bug_max_abs, "max_pairs"),
        (target_bug_bool, "dtype"),
        (target_bug_in_place, "in_place"),
        (target_bug_argmax_float, "dtype"),
        (target_bug_argmax_axis, "shape"),
    ],
)
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


def _wrong(code):
    def impl(logits, labels, importance):
        return checks._wrong_cross_entropies(logits, labels, importance)[code][0]

    return impl


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


@pytest.mark.parametrize(
    ("impl", "code"),
    [
        (_wrong("instances"), "instances"),
        (_wrong("importance"), "importance"),
        (ce_bug_pytorch_weight, "weighted_mean"),
        (_wrong("denominator"), "denominator"),
        (_wrong("no_label"), "no_label"),
        (_wrong("softmax_axis"), "softmax_axis"),
        (ce_bug_nan_when_empty, "not_finite"),
        (ce_bug_no_ignore, "exception"),
    ],
)
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


@pytest.mark.parametrize("impl", [align_reference, align_normalise_first, align_einsum, align_linf_over_l2])
def test_basis_alignment_accepts(impl):
    assert_passes(checks.test_basis_alignment, impl)


@pytest.mark.parametrize(
    ("impl", "code"),
    [
        (align_bug_no_abs, "abs"),
        (align_bug_not_normalised, "normalise"),
        (align_bug_norm_axis, "norm_axis"),
        (align_bug_sum, "max"),
        (align_bug_nan, "not_finite"),
        (align_bug_wrong_axis, "shape"),
    ],
)
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
