"""Checkers for section 7 (the open-problems lab): data generators, targets, the cross-entropy loss, a metric.

References come from the section's reference solution (`solutions/part7_open_problems.py`, the only
definition of these functions), so a checker never depends on another exercise the learner wrote.
"""

from __future__ import annotations

import torch
from torch import Tensor

from solutions import part7_open_problems as ref
from tests.checking import (
    checker,
    expect_close,
    expect_frequency,
    expect_scalar,
    expect_tensor,
    fail,
    uniform_moments_tolerance,
)
from utils.part7_open_problems import NO_LABEL

# A non-uniform probability per instance and feature, away from 1/2 so `rand > p` is caught everywhere.
PROBABILITY = torch.tensor([[0.1, 0.3, 0.7, 0.9], [0.85, 0.2, 0.15, 0.6], [0.4, 0.05, 0.95, 0.25]])
BATCH = 8_000
UNIFORM_KINDS = {"uniform": (0.0, 1.0), "uniform_half": (0.5, 1.0), "signed_uniform": (-1.0, 1.0)}
KINDS = ("uniform", "uniform_half", "signed_uniform", "discrete", "constant", "binary")  # every kind the lab uses
# Union bound over every statistical test of the checker: per kind, the presence rate of each
# (instance, feature) and the joint rate of features 0 and 1 per instance; for the uniform kinds, the
# mean and the mean square of each (instance, feature); for "discrete", 3 value frequencies. Each test
# runs at FAILURE_PROBABILITY / N_TESTS (or less), so a correct answer fails with probability < 1e-7.
N_TESTS = len(KINDS) * (PROBABILITY.numel() + PROBABILITY.shape[0]) + len(UNIFORM_KINDS) * 2 * PROBABILITY.numel() + 3


@checker("generate_features")
def test_generate_features(impl, device):
    """Distribution checks for every value kind; tolerances from Bernstein's inequality (see N_TESTS)."""
    p = PROBABILITY.to(device)
    for kind in KINDS:
        batch = _draw(impl, p, kind, device).detach().cpu()
        present = batch != 0
        values = batch[present]
        # 1. The support and the distribution of the present values.
        if kind in ("constant", "binary"):
            if not torch.all(values == 1):
                also = " ('binary' is another name for 'constant')" if kind == "binary" else ""
                fail(
                    f"with values={kind!r} present features took values in [{values.min():.3g}, {values.max():.3g}]",
                    f"a present feature's value is exactly 1 (only the presence is random){also}",
                    code=kind,
                )
        elif kind == "discrete":
            if not torch.isin(values, torch.tensor([1.0, 2.0, 3.0])).all():
                seen = sorted(set(values.unique()[:8].tolist()))
                fail(
                    f"with values='discrete' present values should lie in {{1, 2, 3}}, saw {seen}",
                    "torch.randint(low, high) excludes high: randint(1, 4) gives 1, 2 or 3",
                    code="discrete",
                )
            # each of 1, 2, 3 with probability 1/3 among present entries (Bernstein, see N_TESTS)
            n = values.numel()
            for v in (1.0, 2.0, 3.0):
                expect_frequency(
                    (values == v).float().mean()[None],
                    1 / 3,
                    n,
                    f"the frequency of value {v:g}",
                    n_tests=N_TESTS,
                    hint="the values 1, 2 and 3 should be equally likely: torch.randint(1, 4, shape)",
                    code="discrete",
                )
        else:
            _check_uniform(batch, present, p.cpu(), kind, *UNIFORM_KINDS[kind])
        # 2. Presence: every instance and feature separately (Bernstein with a union bound).
        expect_frequency(
            present.float().mean(0),
            p.cpu(),
            BATCH,
            f"with values={kind!r}, the presence rate",
            dims="inst feat",
            hint=_presence_hint,
            code="presence",
            n_tests=N_TESTS,
        )
        # 3. Independence across features: P(feature 0 and 1 both present) = p0 p1 for every instance.
        both = (present[:, :, 0] & present[:, :, 1]).float().mean(0)
        expect_frequency(
            both,
            p[:, 0].cpu() * p[:, 1].cpu(),
            BATCH,
            "the rate at which features 0 and 1 are present together",
            dims="inst",
            code="independence",
            hint="draw presence independently for every batch element, instance and feature (shape [batch inst feats])",
            n_tests=N_TESTS,
        )
    return f"presence, values and independence for {len(KINDS)} value kinds"


def _draw(impl, p: Tensor, kind: str, device: torch.device) -> Tensor:
    """The learner's batch for one value kind; a kind they don't handle is named as such."""
    what = f"generate_features(p, {BATCH}, {kind!r})"
    try:
        batch = impl(p, BATCH, kind)
    except (ValueError, KeyError) as err:
        if kind not in str(err):
            raise
        fail(
            f"{what} raised {type(err).__name__}: {err}",
            f"handle every value kind the lab uses: {', '.join(map(repr, KINDS))} "
            "('binary' is another name for 'constant', 'signed_uniform' is U[-1, 1])",
            code="unknown_kind",
        )
    n_inst, n_feats = p.shape
    return expect_tensor(
        batch, what, shape=(BATCH, n_inst, n_feats), dims="batch inst feats", dtype=torch.float32, device=device
    )


def _presence_hint(observed: float, expected: float) -> str:
    if abs(observed - (1 - expected)) < 0.05:
        return "the rate looks like 1 - p: is the mask `rand > p` instead of `rand < p`?"
    if abs(observed - expected / 2) < 0.05 and expected > 0.2:
        return (
            "the rate looks like p/2: are some present features given the value 0? A present feature's value "
            "is never 0 (with 'binary' and 'constant' it is exactly 1)"
        )
    return "feature i of instance k should be present with probability p[k, i]: compare `torch.rand(shape) < p`"


def _check_uniform(batch: Tensor, present: Tensor, p: Tensor, kind: str, low: float, high: float) -> None:
    """Present values U[low, high]: in range, not constant, and per (instance, feature) the mean and mean square
    of U[low, high] (so they must not depend on p); tolerances from Bernstein's inequality (see N_TESTS)."""
    values = batch[present]
    draw = f"{low:g} + {high - low:g} * torch.rand(shape)"
    if values.min() < low or values.max() > high:
        fail(
            f"with values={kind!r} present values should lie in [{low:g}, {high:g}], "
            f"saw [{values.min():.3g}, {values.max():.3g}]",
            f"U[{low:g}, {high:g}] is {draw}",
            code="range",
        )
    if values.std() < 1e-6:
        fail(
            f"with values={kind!r} every present value is {values[0].item():.3g}",
            f"draw each present value from U[{low:g}, {high:g}]: {draw}",
            code="not_random",
        )
    n_min = int(present.sum(0).min())
    t_mean, t_sq = uniform_moments_tolerance(n_min, low, high, n_tests=N_TESTS)
    counts = present.sum(0).clamp(min=1)
    mean = batch.sum(0) / counts
    mean_sq = (batch**2).sum(0) / counts
    exp_mean, exp_sq = (low + high) / 2, (high**3 - low**3) / (3 * (high - low))
    if (mean - exp_mean).abs().max() > t_mean:
        k, i = divmod(int((mean - exp_mean).abs().argmax()), present.shape[2])
        # Values made from the presence draw r < p are U[low, low + (high - low) p]: their mean follows p.
        reused = ((mean - (low + (high - low) * p / 2)).abs() <= t_mean).all()
        hint = (
            "the mean follows p: the values look like the random numbers that decided presence. "
            "Draw the values with a separate rand call"
            if reused
            else f"present values should be U[{low:g}, {high:g}] ({draw}), drawn separately from the presence mask"
        )
        fail(
            f"with values={kind!r} the mean present value of instance {k}, feature {i} is {mean[k, i]:.3f}, "
            f"expected {exp_mean:.3f} ± {t_mean:.3f}",
            hint,
            code="value_mean",
        )
    if (mean_sq - exp_sq).abs().max() > t_sq:
        k, i = divmod(int((mean_sq - exp_sq).abs().argmax()), present.shape[2])
        fail(
            f"with values={kind!r} the mean square of the present values of instance {k}, feature {i} is "
            f"{mean_sq[k, i]:.3f}, expected {exp_sq:.3f} ± {t_sq:.3f}",
            f"the values are not spread over [{low:g}, {high:g}] as a uniform draw is: use {draw}",
            code="value_spread",
        )


# --------------------------------------------------------------------------------------------
# Targets
# --------------------------------------------------------------------------------------------
def _mixed_features(device: torch.device, kind: str) -> Tensor:
    """[batch=64, inst=3, feats=6] with zeros, and values elsewhere: signed, 0/1 or positive; row 0 all zero.

    argmax is tested on positive values only, where the largest feature is unique (no ties to break).
    """
    shape = (64, 3, 6)
    present = torch.rand(shape) < 0.6
    low = 0.1 if kind == "positive" else -1.5
    values = torch.ones(shape) if kind == "binary" else torch.empty(shape).uniform_(low, 1.5)
    x = torch.where(present, values, 0.0)
    x[0] = 0.0
    return x.to(device)


@checker("compute_target")
def test_compute_target(impl, device):
    for target, kind in [
        ("identity", "signed"),
        ("abs", "signed"),
        ("square", "signed"),
        ("max_pairs", "signed"),
        ("and_pairs", "binary"),
        ("or_pairs", "binary"),
        ("argmax", "positive"),
    ]:
        features = _mixed_features(device, kind)
        before = features.clone()
        expected = ref.compute_target(features, target)
        what = f"compute_target(features, {target!r})"
        dtype = torch.int64 if target == "argmax" else features.dtype
        got = expect_tensor(
            impl(features, target),
            what,
            shape=tuple(expected.shape),
            dims="batch inst" if target == "argmax" else "batch inst out",
            dtype=dtype,
            device=device,
        )
        if not torch.equal(features, before):
            fail(
                f"{what} changed its input in place",
                "compute the target without writing into `features`",
                code="in_place",
            )
        if target == "argmax":
            empty = expected == NO_LABEL
            if not torch.equal(got[empty], expected[empty]):
                fail(
                    f"{what}: examples with no feature present should get the label {NO_LABEL}",
                    "argmax of an all-zero row is 0; mark such rows with NO_LABEL = -1 (e.g. torch.where)",
                    code="argmax_empty",
                )
            if not torch.equal(got, expected):
                fail(
                    f"{what}: labels differ from the index of the largest feature",
                    "take argmax over the last (feature) axis",
                    code="argmax",
                )
            continue
        if target in ("max_pairs", "and_pairs", "or_pairs"):
            half = features.shape[-1] // 2
            wrong_layout = _pair_op(features[..., :half], features[..., half:], target)
            if torch.allclose(got, wrong_layout) and not torch.allclose(got, expected):
                fail(
                    f"{what} paired feature j with feature j + n/2",
                    "pair j is features 2j and 2j+1 (adjacent): features[..., 0::2] and features[..., 1::2]",
                    code="pair_layout",
                )
        hint = {
            "or_pairs": "OR is 1 when at least one feature of the pair is on, never 2 (x + y counts both)",
            "and_pairs": "AND is 1 only when both features of the pair are on",
            "max_pairs": "max(x, y) of each pair (2j, 2j+1), elementwise: torch.maximum",
            "square": "x² of every feature (x ** 2), signs included",
            "abs": "|x| of every feature",
            "identity": "the identity target is the features themselves",
        }[target]
        expect_close(got, expected, what, hint=hint, code=target, dims="batch inst out")
    return "7 targets"


def _pair_op(a: Tensor, b: Tensor, target: str) -> Tensor:
    if target == "max_pairs":
        return torch.maximum(a, b)
    if target == "and_pairs":
        return ((a != 0) & (b != 0)).to(a.dtype)
    return ((a != 0) | (b != 0)).to(a.dtype)


# --------------------------------------------------------------------------------------------
# Cross-entropy loss
# --------------------------------------------------------------------------------------------
@checker("cross_entropy_loss")
def test_cross_entropy_loss(impl, device):
    batch, n_inst, n_classes = 32, 3, 5
    logits = (torch.randn(batch, n_inst, n_classes) * 2).to(device)
    labels = torch.randint(0, n_classes, (batch, n_inst))
    labels[torch.rand(batch, n_inst) < 0.3] = NO_LABEL  # about 30% unlabelled, a different count per instance
    labels[1:, 2] = NO_LABEL  # instance 2: a single labelled example
    labels[0, 2] = 3
    labels = labels.to(device)
    importance = torch.tensor([[1.0, 0.5, 2.0, 0.3, 1.5], [0.2, 1.0, 1.0, 3.0, 0.7], [1.0, 1.0, 0.6, 1.2, 1.0]]).to(
        device
    )
    args = (logits.clone(), labels.clone(), importance.clone())
    got = expect_scalar(impl(*args), "cross_entropy_loss(logits, labels, importance)")
    expect_tensor(got, "the loss", dtype=logits.dtype, device=device)
    expected = ref.cross_entropy_loss(logits, labels, importance)
    if torch.isclose(got, expected, rtol=1e-4, atol=1e-5):
        # one instance with no labelled example: its term must be 0, not NaN (checked above by expect_tensor)
        all_empty = torch.full_like(labels, NO_LABEL)
        empty = expect_scalar(impl(logits, all_empty, importance), "the loss when no example is labelled")
        if abs(empty.item()) > 1e-6:
            fail(
                f"with every label NO_LABEL the loss is {empty.item():.4g}, expected 0",
                "leave NO_LABEL examples out: divide by the number of labelled examples (at least 1)",
                code="no_label",
            )
        return None
    candidates = _wrong_cross_entropies(logits, labels, importance)
    for code, (value, hint) in candidates.items():
        if torch.isclose(got, value.to(got.dtype), rtol=1e-4, atol=1e-5):
            fail(f"the loss is {got.item():.5g}, expected {expected.item():.5g}", hint, code=code)
    fail(
        f"the loss is {got.item():.5g}, expected {expected.item():.5g}",
        "per instance: mean over labelled examples of importance[label] · (−log softmax(logits)[label]); "
        "then sum over instances",
        code="values",
    )


def _wrong_cross_entropies(logits: Tensor, labels: Tensor, importance: Tensor) -> dict[str, tuple[Tensor, str]]:
    """The loss as common mistakes compute it, to name the mistake."""
    valid = labels != NO_LABEL
    safe = labels.clamp(min=0)
    log_probs = logits.log_softmax(-1)
    nll = -log_probs.gather(-1, safe[..., None])[..., 0]
    weight = importance.expand_as(logits).gather(-1, safe[..., None])[..., 0]
    n_valid = valid.sum(0).clamp(min=1)
    term = torch.where(valid, weight * nll, 0.0)
    per_inst = term.sum(0) / n_valid
    wrong_axis = -logits.log_softmax(1).gather(-1, safe[..., None])[..., 0]
    return {
        "instances": (per_inst.mean(), "sum the per-instance losses over instances (don't average them)"),
        "importance": (
            (torch.where(valid, nll, 0.0).sum(0) / n_valid).sum(),
            "weight each example's loss by importance[inst, label]",
        ),
        "weighted_mean": (
            (term.sum(0) / torch.where(valid, weight, 0.0).sum(0).clamp(min=1e-12)).sum(),
            "divide by the number of labelled examples, not by the sum of their weights "
            "(F.cross_entropy's `weight` does the latter)",
        ),
        "denominator": (
            (term.sum(0) / labels.shape[0]).sum(),
            "average over labelled examples only: divide by how many labels are not NO_LABEL",
        ),
        "no_label": (
            (weight * nll).mean(0).sum(),
            "leave NO_LABEL (-1) examples out of the loss; clamping them to class 0 counts them",
        ),
        "softmax_axis": (
            (torch.where(valid, weight * wrong_axis, 0.0).sum(0) / n_valid).sum(),
            "take the softmax over the class (last) axis, not over instances",
        ),
    }


# --------------------------------------------------------------------------------------------
# Basis alignment
# --------------------------------------------------------------------------------------------
@checker("basis_alignment")
def test_basis_alignment(impl, device):
    W = torch.randn(4, 3, 6)
    W[0, :, 1] = torch.tensor([0.0, -2.0, 0.0])  # on one (negative) axis: alignment 1
    W[1, :, 2] = torch.tensor([1.0, -1.0, 1.0])  # spread evenly: 1/sqrt(3)
    W[2, :, 3] = 0.0  # a dropped feature: 0
    W[3] *= 3.0  # a larger scale must not matter
    W = W.to(device)
    before = W.clone()
    got = expect_tensor(impl(W), "basis_alignment(W)", shape=(4, 6), dims="inst feats", dtype=W.dtype, device=device)
    if not torch.equal(W, before):
        fail("basis_alignment changed W in place", "work on copies (no in-place ops on W)", code="in_place")
    expected = ref.basis_alignment(W)
    if abs(got[2, 3].item()) > 1e-6:
        fail(
            f"a feature with Wᵢ = 0 got alignment {got[2, 3].item():.3g}, expected 0",
            "a zero vector has no direction: return 0 for it (torch.where on the norm)",
            code="zero_norm",
        )
    hints = [
        (
            W.amax(1) / W.norm(dim=1).clamp(min=1e-12),
            "abs",
            "take the absolute value first: a feature on −axis k is aligned too",
        ),
        (W.abs().amax(1), "normalise", "divide by the feature's norm ‖Wᵢ‖ so the scale of W doesn't matter"),
        (
            (W / W.norm(dim=-1, keepdim=True).clamp(min=1e-12)).abs().amax(1),
            "norm_axis",
            "‖Wᵢ‖ is the norm over the hidden axis (dim 1), one per feature",
        ),
        (W.abs().sum(1) / W.norm(dim=1).clamp(min=1e-12), "max", "take the largest |W_ki| over neurons k, not the sum"),
    ]
    for wrong, code, hint in hints:
        wrong = torch.where(W.norm(dim=1) > 0, wrong, 0.0)
        if not torch.allclose(got, expected, rtol=1e-4, atol=1e-5) and torch.allclose(got, wrong, rtol=1e-4, atol=1e-5):
            fail("basis_alignment(W) differs from max_k |W_ki| / ‖Wᵢ‖", hint, code=code)
    expect_close(
        got, expected, "basis_alignment(W)", hint="max over neurons of |W_ki|, divided by ‖Wᵢ‖", dims="inst feats"
    )
    return None
