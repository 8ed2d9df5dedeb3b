"""Checkers for part 4 (superposition and deep double descent).

Call them from the notebook as `tests.part4_double_descent.test_<exercise>(<object>)`.
The data-set generator is tested on the statistics that define it (never on particular draws); the
schedule and the dimensionality are compared with the formula, and a wrong answer is matched
against what the usual mistakes would return so the hint can name the mistake.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from solutions.part1_superposition import ToyModelConfig
from solutions.part4_double_descent import DoubleDescentModel as RefDoubleDescentModel
from tests.checking import (
    FAILURE_PROBABILITY,
    bernstein_tolerance,
    checker,
    expect_frequency,
    expect_matches,
    expect_tensor,
    fail,
    returned,
    uniform_moments_tolerance,
)


def _callable(impl: object, what: str) -> Callable:
    if not callable(impl):
        fail(
            f"expected the function {what}, got {type(impl).__name__}",
            f"pass the function itself: test_x({what})",
            code="not_callable",
        )
    return impl


# --------------------------------------------------------------------------------------------
# generate_dataset
# --------------------------------------------------------------------------------------------
# Sizes: 3 instances x 24 features x 6000 examples. With p = 0.1 about 8% of examples have no
# feature present, so the empty-example rule is exercised thousands of times.
GEN_EXAMPLES, GEN_INST, GEN_FEATS, GEN_P = 6_000, 3, 24, 0.1
# A present feature whose U[0, 1] draw is exactly 0.0 looks absent (torch.rand has 2^-24 resolution).
# Over the 432k draws here about 43k are present, so the expected number of such zeros is 0.003; one
# of them moves a frequency by 1/6000, far inside the ±2.5% tolerance, and the norm and ratio tests
# below are unaffected by it. The statistical tests share the failure budget by a union bound.
NORM_TOL = 1e-4  # float32 division by a norm: relative error a few ulps
_ONE = torch.ones((), dtype=torch.float64)


def _norm_diagnosis(x: Tensor) -> tuple[str, str]:
    """Which normalisation the learner's data set looks like it has, as (code, hint)."""
    row_l2 = x.norm(dim=-1)
    nonzero = row_l2 > 0
    if torch.allclose(x.sum(-1)[nonzero], _ONE, atol=NORM_TOL):
        return "l1_norm", "divide by the Euclidean (L2) norm x.norm(dim=-1), not by the sum of the features"
    if torch.allclose(x.norm(dim=0), _ONE, atol=NORM_TOL):
        return "norm_axis", (
            "every *feature* has unit norm over the examples: normalise each example over the "
            "feature axis instead (dim=-1)"
        )
    if torch.allclose(x.amax(-1)[nonzero], _ONE, atol=NORM_TOL):
        return "max_norm", "divide by the Euclidean norm of the example, not by its largest value"
    return "not_normalised", "divide every example by its L2 norm over the features: x / x.norm(dim=-1, keepdim=True)"


@checker("generate_dataset")
def test_generate_dataset(generate_dataset: Callable, device: torch.device) -> str:
    fn = _callable(generate_dataset, "generate_dataset")
    x = fn(GEN_EXAMPLES, GEN_INST, GEN_FEATS, GEN_P, device=device)
    x = expect_tensor(
        x,
        "generate_dataset(...)",
        shape=(GEN_EXAMPLES, GEN_INST, GEN_FEATS),
        dims="examples inst feats",
        dtype=torch.float32,
        device=device,
        finite=False,
    )
    if not torch.isfinite(x).all():
        empty = int((~torch.isfinite(x)).all(-1).sum())
        fail(
            f"the data set contains NaN or infinite values ({empty} examples entirely NaN)",
            "examples with no feature present have norm 0, and 0 / 0 is NaN: divide by norm.clamp_min(1e-12) "
            "so they stay all zeros",
            code="empty_examples",
        )
    x = x.detach().cpu().double()
    if (x < 0).any():
        fail(
            f"the data set has negative values (min {x.min().item():.3g})",
            "present features take values from U[0, 1] before normalising, absent ones are exactly 0",
            code="value_range",
        )

    # 1. every non-empty example has unit L2 norm over the features; empty ones are zero (checked above)
    norms = x.norm(dim=-1)
    nonzero = norms > 0
    if not torch.allclose(norms[nonzero], _ONE, atol=NORM_TOL):
        code, hint = _norm_diagnosis(x)
        bad = ((norms - 1).abs() * nonzero).argmax()
        e, k = divmod(int(bad), GEN_INST)
        fail(
            f"example {e} of instance {k} has L2 norm {norms[e, k].item():.4f} over the features, expected 1",
            hint,
            code=code,
        )

    # 2. presence: frequency per (inst, feature), and independence between instances
    present = x > 0
    n_tests = GEN_INST * GEN_FEATS + GEN_INST * (GEN_INST - 1) // 2 + 2
    if present.shape[0] > 1 and (present == present[:1]).all():
        fail(
            "every example has the same features present",
            "draw presence separately for every example",
            code="same_examples",
        )

    def presence_hint(observed: float, expected: float) -> str:
        if abs(observed - (1 - expected)) < 0.05:
            return "the frequency is close to 1 - p: is the mask `rand > p` instead of `rand < p`?"
        return "each feature should be present with probability feature_probability, independently"

    expect_frequency(
        present.double().mean(0),
        GEN_P,
        GEN_EXAMPLES,
        "presence frequency",
        dims="inst feature",
        hint=presence_hint,
        code="presence_probability",
        n_tests=n_tests,
    )
    # P(feature present in instances i and j of the same example) = p^2 if instances are independent;
    # pooled over examples and features that is GEN_EXAMPLES * GEN_FEATS independent Bernoulli(p^2) draws.
    n_pool = GEN_EXAMPLES * GEN_FEATS
    for i in range(GEN_INST):
        for j in range(i + 1, GEN_INST):
            both = (present[:, i] & present[:, j]).double().mean().item()
            tol = bernstein_tolerance(n_pool, GEN_P**2 * (1 - GEN_P**2), 1.0, FAILURE_PROBABILITY / n_tests)
            if abs(both - GEN_P**2) > tol:
                fail(
                    f"instances {i} and {j} share a present feature in {both:.2%} of (example, feature) slots, "
                    f"independent draws give {GEN_P**2:.2%} ± {tol:.2%}",
                    "every instance needs its own data set: draw with shape [n_examples, n_inst, n_features] "
                    "instead of repeating one draw over instances",
                    code="same_across_instances",
                )

    # 3. values: normalising rescales an example but keeps ratios. Given the largest value M of an
    # example, its other present values are i.i.d. U[0, M], so (value / M) over all non-maximal present
    # values is a sample of U[0, 1] whatever the normalisation: test its mean and mean square.
    row_max = x.amax(-1, keepdim=True)
    ratios = torch.where(present, x / row_max.clamp_min(1e-300), 0.0)
    is_max = torch.zeros_like(present)
    is_max.scatter_(-1, x.argmax(-1, keepdim=True), True)
    sample = ratios[present & ~is_max]
    n = sample.numel()
    if n < 1000:
        fail(
            f"only {n} present values in examples with two or more features",
            "check the presence mask",
            code="presence_probability",
        )
    if (sample > 1 - 1e-6).double().mean() > 0.5:
        fail(
            "within an example every present feature has the same value",
            "draw each present feature's value from U[0, 1] (before normalising), not a constant",
            code="constant_values",
        )
    tol_mean, tol_sq = uniform_moments_tolerance(n, 0.0, 1.0, n_tests=1)
    mean, mean_sq = sample.mean().item(), (sample**2).mean().item()
    if abs(mean - 0.5) > tol_mean or abs(mean_sq - 1 / 3) > tol_sq:
        fail(
            f"the present values of an example, relative to its largest one, have mean {mean:.3f} and mean "
            f"square {mean_sq:.3f}; U[0, 1] values give 0.500 ± {tol_mean:.3f} and 0.333 ± {tol_sq:.3f}",
            "draw each present feature's value from U[0, 1] with torch.rand (a separate draw from the presence "
            "mask), then normalise",
            code="value_distribution",
        )
    return "sparse, unit-norm examples, independent across instances"


# --------------------------------------------------------------------------------------------
# warmup_cosine_lr
# --------------------------------------------------------------------------------------------
def _cos(progress: float) -> float:
    return 0.5 * (1 + math.cos(math.pi * progress))


def _schedule_candidates(steps: int, warmup: int) -> tuple[list[float], list[tuple[str, str, list[float]]]]:
    """The right factors for every step, and what the usual mistakes give."""

    def right(s: int) -> float:
        return s / warmup if s < warmup else _cos((s - warmup) / (steps - warmup))

    def warm(s: int, f: Callable[[int], float]) -> float:
        return s / warmup if s < warmup else f(s)

    rest = steps - warmup
    mistakes: list[tuple[str, str, Callable[[int], float]]] = [
        (
            "no_warmup",
            "the first warmup_steps steps should rise linearly from 0: step / warmup_steps",
            lambda s: _cos(s / steps),
        ),
        (
            "cosine_not_shifted",
            "after the warm-up the cosine starts again from 1: use (step - warmup_steps) / "
            "(steps - warmup_steps) as its progress",
            lambda s: warm(s, lambda t: _cos(t / steps)),
        ),
        (
            "cosine_length",
            "the cosine must reach 0 at the last step: divide by steps - warmup_steps, not by steps",
            lambda s: warm(s, lambda t: _cos((t - warmup) / steps)),
        ),
        (
            "linear_decay",
            "after the warm-up the factor follows half a cosine, 0.5 (1 + cos(π progress)), not a straight line",
            lambda s: warm(s, lambda t: 1 - (t - warmup) / rest),
        ),
        (
            "cosine_scale",
            "half a cosine from 1 to 0 is 0.5 * (1 + cos(π progress)): check the 0.5 and the 1 +",
            lambda s: warm(s, lambda t: math.cos(math.pi * (t - warmup) / rest)),
        ),
        (
            "warmup_off_by_one",
            "the warm-up starts at 0 at step 0: the factor is step / warmup_steps",
            lambda s: (s + 1) / warmup if s < warmup else right(s),
        ),
        (
            "warmup_length",
            "the warm-up rises from 0 to 1 over warmup_steps steps: divide by warmup_steps, not by steps",
            lambda s: s / steps if s < warmup else right(s),
        ),
    ]
    values = [right(s) for s in range(steps)]
    out = []
    for code, hint, f in mistakes:
        try:
            out.append((code, hint, [f(s) for s in range(steps)]))
        except ZeroDivisionError:
            continue
    return values, out


@checker("warmup_cosine_lr")
def test_warmup_cosine_lr(warmup_cosine_lr: Callable, device: torch.device) -> str:
    fn = _callable(warmup_cosine_lr, "warmup_cosine_lr")
    for steps, warmup in [(200, 20), (1000, 100), (37, 5), (50, 0)]:
        got = []
        for s in range(steps):
            try:
                value = returned(fn(s, steps, warmup), f"warmup_cosine_lr({s}, {steps}, {warmup})")
            except ZeroDivisionError:
                if warmup == 0:
                    fail(
                        "warmup_cosine_lr(step, steps, warmup_steps=0) divides by zero",
                        "with no warm-up, skip the warm-up branch: test `step < warmup_steps` first",
                        code="zero_warmup",
                    )
                raise
            if isinstance(value, Tensor):
                if value.numel() != 1:
                    fail(
                        f"warmup_cosine_lr returned a tensor of shape {tuple(value.shape)}, expected a number",
                        "return a float (math.cos works on Python numbers)",
                        code="not_number",
                    )
                value = value.item()
            if not isinstance(value, int | float):
                fail(
                    f"warmup_cosine_lr returned {type(value).__name__}, expected a float",
                    "return a Python float",
                    code="not_number",
                )
            got.append(float(value))
        right, mistakes = _schedule_candidates(steps, warmup)
        expect_matches(
            torch.tensor(got, dtype=torch.float64),
            torch.tensor(right, dtype=torch.float64),
            f"warmup_cosine_lr(step, steps={steps}, warmup_steps={warmup})",
            [(c, h, torch.tensor(v, dtype=torch.float64)) for c, h, v in mistakes],
            rtol=1e-6,
            atol=1e-7,
            dims="step",
        )
    return "linear warm-up, then half a cosine to 0"


# --------------------------------------------------------------------------------------------
# DoubleDescentModel.generate_batch
# --------------------------------------------------------------------------------------------
@checker("generate_batch")
def test_generate_batch(DoubleDescentModel: type, device: torch.device) -> str:
    if not isinstance(DoubleDescentModel, type) or not hasattr(DoubleDescentModel, "generate_batch"):
        fail(
            f"expected the DoubleDescentModel class, got {type(DoubleDescentModel).__name__}",
            "pass the class itself: test_generate_batch(DoubleDescentModel)",
            code="not_class",
        )
    generate_batch = DoubleDescentModel.generate_batch
    # The reference model (with the reference generate_dataset) holds the training set, so only the
    # learner's generate_batch is under test.
    cfg = ToyModelConfig(n_inst=3, n_features=50, d_hidden=2)
    n_train = 40
    model = RefDoubleDescentModel(cfg, n_train=n_train, feature_probability=0.1, device=device)
    data = model.train_data.clone()
    first = generate_batch(model, 16)
    first = expect_tensor(
        first,
        "generate_batch(16)",
        shape=(n_train, 3, 50),
        dims="examples inst feats",
        dtype=torch.float32,
        device=device,
    )
    second = expect_tensor(
        generate_batch(model, 16),
        "a second call of generate_batch(16)",
        shape=(n_train, 3, 50),
        dims="examples inst feats",
    )
    if not torch.equal(model.train_data, data):
        fail("generate_batch changed self.train_data", "return the training set without modifying it", code="modified")
    if not torch.equal(first, second):
        fail(
            "two calls of generate_batch returned different data",
            "return the fixed training set self.train_data; drawing new examples at every step is part 1's "
            "infinite-data setting",
            code="not_fixed",
        )
    if not torch.equal(first, data):
        same_rows = first[:, None] == data[None]
        if same_rows.all(-1).all(-1).any(-1).all():
            hint = "the rows are training examples but not all of them, or in another order: return self.train_data"
        else:
            hint = "return the model's own training set self.train_data, not another data set"
        fail("generate_batch did not return the model's training set self.train_data", hint, code="not_train_data")
    return "the same full training set at every call"


# --------------------------------------------------------------------------------------------
# compute_dimensionality
# --------------------------------------------------------------------------------------------
def _dimensionality_candidates(v: Tensor) -> tuple[Tensor, list[tuple[str, str, Tensor]]]:
    """The right dimensionalities of v [inst n d] (float64) and what the usual mistakes give."""
    norm_sq = (v**2).sum(-1)
    unit = v / norm_sq.sqrt().clamp_min(1e-300)[..., None]
    dots = torch.einsum("kid,kjd->kij", unit, v)
    interference = (dots**2).sum(-1)
    right = torch.where(norm_sq > 0, norm_sq / interference.clamp_min(1e-300), 0.0)
    eye = torch.eye(v.shape[1], dtype=torch.bool)
    raw = torch.einsum("kid,kjd->kij", v, v)
    both_unit = torch.einsum("kid,kjd->kij", unit, unit)
    mistakes = [
        (
            "self_excluded",
            "the sum over j includes j = i (a lone feature then has dimensionality 1)",
            norm_sq / torch.where(eye, 0.0, dots**2).sum(-1),
        ),
        ("unnormalised", "normalise the first vector: (v̂ᵢ · vⱼ)² with v̂ᵢ = vᵢ / ‖vᵢ‖", norm_sq / (raw**2).sum(-1)),
        (
            "both_normalised",
            "normalise only the first vector: (v̂ᵢ · vⱼ)², not (v̂ᵢ · v̂ⱼ)²",
            norm_sq / (both_unit**2).sum(-1),
        ),
        ("not_squared", "square the dot products: Σⱼ (v̂ᵢ · vⱼ)²", norm_sq / dots.abs().sum(-1)),
        ("numerator", "the numerator is the squared norm ‖vᵢ‖², not the norm", norm_sq.sqrt() / interference),
        (
            "instance_mixing",
            "each instance is a separate set of vectors: only sum over vectors j of the same instance",
            norm_sq / torch.einsum("kid,ljd->kij", unit, v).pow(2).sum(-1),
        ),
    ]
    return right, mistakes


@checker("compute_dimensionality")
def test_compute_dimensionality(compute_dimensionality: Callable, device: torch.device) -> str:
    fn = _callable(compute_dimensionality, "compute_dimensionality")
    g = torch.Generator().manual_seed(7)
    # 3 instances, 7 vectors in 3 dimensions, norms spread over two orders of magnitude
    v = torch.randn(3, 7, 3, generator=g) * torch.logspace(-1, 1, 7)[None, :, None]
    out = expect_tensor(
        fn(v.to(device)),
        "compute_dimensionality(v)",
        shape=(3, 7),
        dims="inst vectors",
        dtype=torch.float32,
        device=device,
    )
    right, mistakes = _dimensionality_candidates(v.double())
    expect_matches(
        out.double().cpu(), right, "compute_dimensionality(v)", mistakes, rtol=1e-4, atol=1e-6, dims="inst vectors"
    )

    # A regular pentagon of unit vectors: each gets 2/5 of a dimension. One orthogonal pair: 1 each.
    angles = torch.arange(5) * 2 * math.pi / 5
    pentagon = torch.stack([angles.cos(), angles.sin()], -1)[None]
    out = expect_tensor(fn(pentagon.to(device)), "compute_dimensionality(pentagon)", shape=(1, 5))
    expect_matches(
        out.double().cpu(),
        torch.full((1, 5), 0.4, dtype=torch.float64),
        "compute_dimensionality of a regular pentagon of unit vectors (expected 2/5 each)",
        _dimensionality_candidates(pentagon.double())[1],
        rtol=1e-4,
        atol=1e-6,
    )

    # A zero vector (a dropped feature, an empty example) has dimensionality 0, not NaN.
    with_zero = torch.cat([v[:1, :4], torch.zeros(1, 1, 3)], 1)
    out = expect_tensor(
        fn(with_zero.to(device)), "compute_dimensionality with a zero vector", shape=(1, 5), finite=False
    )
    if not torch.isfinite(out).all():
        fail(
            "a zero vector got a NaN or infinite dimensionality, expected 0",
            "‖v‖ = 0 makes v̂ = v / ‖v‖ undefined: clamp the norm (norm.clamp_min(1e-12)) or use torch.where",
            code="zero_vector",
        )
    expect_matches(
        out.double().cpu(),
        _dimensionality_candidates(with_zero.double())[0],
        "compute_dimensionality with a zero vector (expected 0 for it)",
        rtol=1e-4,
        atol=1e-6,
    )
    return "‖vᵢ‖² / Σⱼ (v̂ᵢ·vⱼ)², per instance"
