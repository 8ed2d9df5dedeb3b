"""Checkers for section 7 (the open-problems lab): data generators, targets, the cross-entropy loss, a metric.

References come from the section's reference solution (`solutions/part7_open_problems.py`, the only
definition of these functions), so a checker never depends on another exercise the learner wrote. Known
mistakes and the statistics that name a random generator's mistakes are in `tests/part7_open_problems_mistakes.py`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from solutions import part7_open_problems as ref
from tests import part7_open_problems_alignment as A
from tests import part7_open_problems_readbacks as R
from tests.checking import (
    checker,
    expect_frequency,
    expect_matches,
    expect_tensor,
    fail,
    generic_diagnosis,
    returned,
    uniform_moments_tolerance,
)
from tests.mutants import Reference, call
from tests.part7_open_problems_inputs import ce_first_call, constant_rows, zero_and_tiny_rows
from tests.part7_open_problems_mistakes import (
    UNIFORM_KINDS,
    alignment_mistakes,
    cross_entropy_mistakes,
    draw_code,
    matching_rate,
    name_distribution,
    presence_candidates,
    rate_tolerance,
    target_mistakes,
)
from tests.part7_open_problems_probes import (
    absent_value_hint,
    affine_alignment_hint,
    alignment_call,
    argmax_negative_rows,
    examples_alone,
    fixed_axis_hint,
    float64_probability,
    instances_combined_failure,
    label_smoothing_failure,
    merged_axes_hint,
    noted_axes,
    one_instance_only,
    pair_reads_hint,
    pair_sign_hint,
    power_law_seen,
    value_mean_failure,
    whole_number_losses,
    zero_column_hint,
)
from tests.part7_open_problems_tiny import labelling_readings
from tests.part7_open_problems_value_shape import discrete_hint, discrete_shared, value_shape
from utils.part7_open_problems import NO_LABEL

# --------------------------------------------------------------------------------------------
# generate_features
# --------------------------------------------------------------------------------------------
# A different probability for every instance and feature, none near 1/2 (so `rand > p` shows), none equal to
# another's half, square or mean (so each rate mistake moves some entry by many standard errors).
PROBABILITY = torch.tensor([[0.1, 0.3, 0.7, 0.9], [0.85, 0.2, 0.15, 0.6], [0.4, 0.05, 0.95, 0.25]])
BATCH = 8_000
KINDS = ("uniform", "uniform_half", "signed_uniform", "discrete", "constant", "binary")  # every kind the lab uses
_N_INST, _N_FEATS = PROBABILITY.shape
# Union bound over every statistical test of the checker. Per kind: the presence rate of each (instance,
# feature), the joint rate of features 0 and 1 per instance, of each feature in instances 0 and 1, and of each
# (instance, feature) in neighbouring examples. For the uniform kinds, the mean and mean square of each
# (instance, feature); for "discrete", 3 value frequencies. Each test runs at FAILURE_PROBABILITY / N_TESTS, so
# a correct answer fails the whole checker with probability < 1e-7 (`tests.checking`).
# "discrete" adds 2 more: how often two present values are equal, across features and across instances.
N_TESTS = len(KINDS) * (3 * PROBABILITY.numel() + _N_INST + _N_FEATS) + len(UNIFORM_KINDS) * 2 * PROBABILITY.numel() + 5


@checker("generate_features", kind="function")
def test_generate_features(impl, device):
    p = PROBABILITY.to(device)
    # (The checker runs inside a forked RNG, `checking.seeded`: a seed set by the learner's code ends with it.)
    for kind in KINDS:
        batch = _draw(impl, p, kind, device).detach().cpu()
        present = batch != 0
        absent_value_hint(batch, kind, p)  # first: absent entries that are not 0 look present
        _check_support(batch, present, kind)
        _check_presence(present, kind)
        _check_independence(present, kind)
        _check_values(batch, present, kind)
        # After the statistics (a batch that is never present is the same every time for another reason).
        if kind == KINDS[0] and torch.equal(batch, _draw(impl, p, kind, device).detach().cpu()):
            fail(
                f"two calls generate_features(p, {BATCH}, {kind!r}) in a row returned the same batch",
                "draw a fresh batch on every call: don't seed inside the function (torch.manual_seed belongs to "
                "the caller)",
                code="not_fresh",
            )
    return float64_probability(impl, p, BATCH) or f"presence, values and independence for {len(KINDS)} value kinds"


def _draw(impl, p: Tensor, kind: str, device: torch.device) -> Tensor:
    """The learner's batch for one value kind; a kind they don't handle is named as such."""
    what = f"generate_features(p, {BATCH}, {kind!r})"
    try:
        batch = impl(p.clone(), BATCH, kind)
    except (ValueError, KeyError) as err:
        if kind not in str(err):
            raise
        fail(
            f"{what} raised {type(err).__name__}: {err}",
            f"handle every value kind the lab uses: {', '.join(map(repr, KINDS))} "
            "('binary' is another name for 'constant', 'signed_uniform' is U[-1, 1])",
            code="unknown_kind",
        )
    batch = expect_tensor(batch, what, shape=(BATCH, _N_INST, _N_FEATS), dims="batch inst feats", device=device)
    if batch.dtype != torch.float32:
        fail(
            f"{what} has dtype {batch.dtype}, expected torch.float32",
            "return float32: convert a mask or integer values with `.float()`, and don't create float64 tensors",
            code="dtype",
        )
    return batch


def _check_support(batch: Tensor, present: Tensor, kind: str) -> None:
    """The set of values a present feature takes: exactly 1, {1, 2, 3}, or inside the uniform's range."""
    values = batch[present]
    if values.numel() == 0:
        fail(
            f"with values={kind!r} no feature is ever present",
            "feature i of instance k is present when rand < feature_probability[k, i]",
            code="never_present",
        )

    def looks_like() -> str:
        looks = name_distribution(values)
        return f": that looks like {looks[0]} ({looks[1]})" if looks else ""

    if kind in ("constant", "binary"):
        if not torch.all(values == 1):
            also = " ('binary' is another name for 'constant')" if kind == "binary" else ""
            fail(
                f"with values={kind!r} present features took values in [{values.min():.3g}, {values.max():.3g}]"
                f"{looks_like()}",
                f"a present feature's value is exactly 1 (only the presence is random){also}",
                code=kind,
            )
    elif kind == "discrete":
        seen = sorted(set(values.unique()[:8].tolist()))
        if not torch.isin(values, torch.tensor([1.0, 2.0, 3.0])).all():
            fail(
                f"with values='discrete' present values should lie in {{1, 2, 3}}, saw {seen}{looks_like()}",
                "draw integers with torch.randint(1, 4, shape) (high is excluded) and convert them to float",
                code="discrete_values",
            )
        if seen == [1.0, 2.0]:
            # randint(1, 3) gives 1 or 2 to every present feature; randint(0, 3) gives 0 (absent-looking) a third of
            # the time, so the presence rate falls to 2p/3.
            rate = present.float().mean(0).double()
            two_thirds = (rate - 2 * PROBABILITY.double() / 3).abs() <= rate_tolerance(
                BATCH, 2 * PROBABILITY / 3, N_TESTS
            )
            if two_thirds.all():
                fail(
                    "with values='discrete' present values are only 1 and 2, and features are present 2/3 as often "
                    "as they should be",
                    "torch.randint(0, 3) draws 0, 1 or 2, and a 0 looks absent: draw from {1, 2, 3} with "
                    "torch.randint(1, 4, shape)",
                    code="randint_zero",
                )
            fail(
                "with values='discrete' present values are only 1 and 2, never 3",
                "torch.randint(low, high) excludes high: randint(1, 4) gives 1, 2 or 3",
                code="randint_upper",
            )
        if len(seen) < 3:
            fail(
                f"with values='discrete' present values are only {seen}",
                "each of 1, 2 and 3 should appear, with probability 1/3: torch.randint(1, 4, shape)",
                code="discrete_values",
            )
        _check_rounded(values, present)
    else:
        low, high = UNIFORM_KINDS[kind]
        if values.min() < low or values.max() > high:
            fail(
                f"with values={kind!r} present values should lie in [{low:g}, {high:g}], "
                f"saw [{values.min():.3g}, {values.max():.3g}]{looks_like()}",
                f"U[{low:g}, {high:g}] is {draw_code(low, high)}",
                code="range",
            )


def _check_rounded(values: Tensor, present: Tensor) -> None:
    """The value law before the presence rate: round(3·rand) gives 0 a sixth of the time, which looks absent."""
    n = values.numel()
    freq = torch.stack([(values == v).double().mean() for v in (1.0, 2.0, 3.0)])
    # round(3·rand) given non-zero: 2/5 2/5 1/5. A correct draw has each frequency within ±0.016 of 1/3 (the
    # union-bound tolerance at n ≈ 43600), so it is never within the ±0.013 of 1/5 this test allows for a 3.
    rounded = torch.tensor([0.4, 0.4, 0.2], dtype=torch.float64)
    if ((freq - rounded).abs() <= rate_tolerance(n, rounded, N_TESTS)).all():
        rate, low = present.double().mean(0), 5 * PROBABILITY.double() / 6  # a 0 (1/6 of draws) looks absent
        fewer = ((rate - low).abs() <= rate_tolerance(BATCH, low, N_TESTS)).all()
        fail(
            f"with values='discrete' the present values 1, 2, 3 have frequencies {_fmt(freq[None])}, expected "
            "1/3 each" + (", and features are present 5/6 as often as p" if fewer else ""),
            "rounding 3·rand gives 0, 1, 2, 3 with the end values half as likely, and a 0 looks absent: draw "
            "integers with torch.randint(1, 4, shape) (or floor(3·rand) + 1)",
            code="discrete_rounded",
        )


def _check_presence(present: Tensor, kind: str) -> None:
    """Every (instance, feature) present at its own rate; a wrong pattern of rates is traced to its cause."""
    rate = present.float().mean(0)
    p = PROBABILITY.double()
    if ((rate.double() - p).abs() <= rate_tolerance(BATCH, p, N_TESTS)).all():
        return
    if (rate == 1).all():  # a shared draw gives 0 too: P(all 12 present) = prod(p) < 1e-5
        fail(
            f"with values={kind!r}, every feature is present in every example (no entry is ever 0)",
            "absent features are exactly 0: is the mask applied, torch.where(rand < p, values, 0.0)?",
            code="never_absent",
        )
    if ((rate == 0) | (rate == 1)).all():
        fail(
            f"with values={kind!r}, every feature is present in all examples of the batch or in none",
            "every example of the batch gets the same presence: draw one random number per batch element too "
            "(a [batch inst feats] tensor)",
            code="shared_over_batch",
        )
    found = matching_rate(rate, BATCH, presence_candidates(PROBABILITY), N_TESTS)
    if found is not None:
        code, hint = found
        fail(
            f"with values={kind!r}, the presence rates per (inst, feat) are {_fmt(rate)}, expected {_fmt(PROBABILITY)}",
            hint,
            code=code,
        )
    c = float((rate.double() / p).median())
    if c < 1 and ((rate.double() - c * p).abs() <= rate_tolerance(BATCH, c * p, N_TESTS)).all():
        fail(
            f"with values={kind!r}, features are non-zero {c:.3f} × as often as p (every (inst, feat)): rates "
            f"{_fmt(rate)}, expected {_fmt(PROBABILITY)}",
            "a feature counts as present when its value is non-zero, so two causes are possible: the presence mask "
            f"is drawn at {c:.3f} × p, or a present feature's value is itself 0 a fraction {1 - c:.3f} of the time "
            "(a value law that includes 0: e.g. a sign from torch.randint(-1, 2), which gives -1, 0 or 1)",
            code="presence",
        )
    expect_frequency(
        rate,
        PROBABILITY,
        BATCH,
        f"with values={kind!r}, the presence rate",
        dims="inst feat",
        hint="feature i of instance k should be present with probability p[k, i], independently: "
        "`torch.rand(batch, inst, feats) < p`",
        code="presence",
        n_tests=N_TESTS,
    )


def _fmt(rate: Tensor) -> str:
    return "[" + "; ".join(" ".join(f"{v:.2f}" for v in row) for row in rate.tolist()) + "]"


def _joint(both: Tensor, expected: Tensor, n: int, what: str, code: str, shared_hint: str, shared: Tensor) -> None:
    """Joint presence rates of two draws that should be independent; a rate at min(p, q) means a shared draw."""
    observed = both.float().mean(0)
    tol = rate_tolerance(n, expected.double(), N_TESTS)
    if ((observed.double() - expected.double()).abs() <= tol).all():
        return
    near_shared = (observed.double() - shared.double()).abs() <= rate_tolerance(n, shared.double(), N_TESTS)
    hint = (
        shared_hint
        if near_shared.all()
        else "draw presence independently for every batch element, instance "
        "and feature (one random number each: a tensor of shape [batch inst feats])"
    )
    expect_frequency(
        observed, expected, n, what, hint=hint, code=code if near_shared.all() else "independence", n_tests=N_TESTS
    )


def _check_independence(present: Tensor, kind: str) -> None:
    p = PROBABILITY
    _joint(
        present[:, :, 0] & present[:, :, 1],
        p[:, 0] * p[:, 1],
        BATCH,
        f"with values={kind!r}, the rate at which features 0 and 1 are present together",
        "shared_over_features",
        "features are present together as often as the rarer one is present at all: one random number per "
        "example is shared by all features. Draw one per feature ([batch inst feats])",
        torch.minimum(p[:, 0], p[:, 1]),
    )
    _joint(
        present[:, 0, :] & present[:, 1, :],
        p[0] * p[1],
        BATCH,
        f"with values={kind!r}, the rate at which a feature is present in instances 0 and 1 together",
        "shared_over_instances",
        "instances share their random numbers: draw one per instance (a [batch inst feats] tensor, not "
        "[batch 1 feats] broadcast over instances)",
        torch.minimum(p[0], p[1]),
    )
    half = BATCH // 2
    _joint(
        present[0 : 2 * half : 2] & present[1 : 2 * half : 2],
        p**2,
        half,
        f"with values={kind!r}, the rate at which a feature is present in two neighbouring examples",
        "shared_over_batch",
        "every example of the batch gets the same presence: draw one random number per batch element too",
        p,
    )


def _check_values(batch: Tensor, present: Tensor, kind: str) -> None:
    values = batch[present]
    if kind in ("constant", "binary"):
        return
    if kind == "discrete":
        n = discrete_shared(batch, present) or values.numel()  # a value shared over the batch, named first
        for v in (1.0, 2.0, 3.0):
            expect_frequency(
                (values == v).float().mean()[None],
                1 / 3,
                n,
                f"the frequency of value {v:g} among present features",
                n_tests=N_TESTS,
                hint=discrete_hint(values),
                code="discrete_frequency",
            )
        # Independent values are equal with probability 1/3; values drawn once and broadcast are always equal.
        for both, a, b, axis in (
            (present[:, :, 0] & present[:, :, 1], batch[:, :, 0], batch[:, :, 1], "features 0 and 1"),
            (present[:, 0, :] & present[:, 1, :], batch[:, 0, :], batch[:, 1, :], "instances 0 and 1"),
        ):
            expect_frequency(
                (a[both] == b[both]).float().mean()[None],
                1 / 3,
                int(both.sum()),
                f"with values='discrete', how often {axis} have the same value where both are present",
                n_tests=N_TESTS,
                hint=f"draw one value per batch element, instance and feature (torch.randint(1, 4, shape) with the "
                f"full [batch inst feats] shape): {axis} share values more often than independent draws would",
                code="values_shared_over_" + axis.split()[0],
            )
        return
    low, high = UNIFORM_KINDS[kind]
    draw = draw_code(low, high)
    if values.std() < 1e-6:
        one = " (the branch for constant values ran? `x == 'a' or 'b'` is always true, since a non-empty string is " \
            "truthy: write x in ('a', 'b'))" if values[0].item() == 1 else ""  # fmt: skip
        fail(
            f"with values={kind!r} every present value is {values[0].item():.3g}",
            f"draw each present value from U[{low:g}, {high:g}]: {draw}{one}",
            code="not_random",
        )
    # Values drawn once and shared: along the batch (a [inst feats] draw), along features ([batch inst 1]).
    counts = present.sum(0)
    spread = torch.stack([batch[:, i, f][present[:, i, f]].std() for i in range(_N_INST) for f in range(_N_FEATS)])
    if (spread < 1e-6).all():
        fail(
            f"with values={kind!r} each (instance, feature) has one value for the whole batch",
            f"draw a fresh value for every batch element: {draw} with shape [batch inst feats]",
            code="values_shared_over_batch",
        )
    both = present[:, :, 0] & present[:, :, 1]
    if both.sum() > 10 and torch.equal(batch[:, :, 0][both], batch[:, :, 1][both]):
        fail(
            f"with values={kind!r} features 0 and 1 always have the same value when both are present",
            f"draw one value per feature: {draw} with shape [batch inst feats], not [batch inst 1]",
            code="values_shared_over_features",
        )
    both_inst = present[:, 0, :] & present[:, 1, :]
    if both_inst.sum() > 10 and torch.equal(batch[:, 0, :][both_inst], batch[:, 1, :][both_inst]):
        fail(
            f"with values={kind!r} instances 0 and 1 have the same value wherever a feature is present in both",
            f"draw one value per instance: {draw} with shape [batch inst feats], not [batch 1 feats]",
            code="values_shared_over_instances",
        )
    if (spread < 1e-6).any():
        fail(
            f"with values={kind!r} some (instance, feature) has a single value for the whole batch",
            f"draw a fresh value for every batch element, instance and feature: {draw}",
            code="values_shared_over_batch",
        )
    n_min = int(counts.min())
    t_mean, t_sq = uniform_moments_tolerance(n_min, low, high, n_tests=N_TESTS)
    safe = counts.clamp(min=1)
    mean, mean_sq = batch.sum(0) / safe, (batch**2).sum(0) / safe
    exp_mean, exp_sq = (low + high) / 2, (high**3 - low**3) / (3 * (high - low))
    if (mean - exp_mean).abs().max() > t_mean:
        k, i = divmod(int((mean - exp_mean).abs().argmax()), _N_FEATS)
        message = (
            f"with values={kind!r} the mean present value of instance {k}, feature {i} is {mean[k, i]:.3f}, "
            f"expected {exp_mean:.3f} ± {t_mean:.3f}"
        )
        # Values made from the presence draw r < p are U[low, low + (high - low) p]: their mean follows p.
        if ((mean - (low + (high - low) * PROBABILITY / 2)).abs() <= t_mean).all():
            fail(
                message,
                "the mean follows p: the values look like the random numbers that decided presence. Draw the values "
                "with a separate rand call",
                code="reused_draw",
            )
        value_mean_failure(message, batch, present, low, high, draw)
    if (mean_sq - exp_sq).abs().max() > t_sq:
        k, i = divmod(int((mean_sq - exp_sq).abs().argmax()), _N_FEATS)
        looks = name_distribution(batch[present], continuous=True)
        seen = f"your values look like {looks[0]} ({looks[1]}); " if looks else ""
        seen = power_law_seen(batch[present], low, high) or seen
        fail(
            f"with values={kind!r} the mean square of the present values of instance {k}, feature {i} is "
            f"{mean_sq[k, i]:.3f}, expected {exp_sq:.3f} ± {t_sq:.3f}",
            f"{seen}the values are not spread over [{low:g}, {high:g}] as a uniform draw is: use {draw}",
            code="value_spread",
        )
    value_shape(batch, present, kind, low, high, draw, N_TESTS + len(UNIFORM_KINDS))  # KS against U[low, high]


# --------------------------------------------------------------------------------------------
# Targets
# --------------------------------------------------------------------------------------------
TARGET_INPUTS = [  # (target, kind of features): AND/OR on binary inputs, then signed ones (the contract: non-zero)
    ("identity", "signed"),
    ("abs", "signed"),
    ("square", "signed"),
    ("max_pairs", "signed"),
    ("and_pairs", "binary"),
    ("or_pairs", "binary"),
    ("and_pairs", "signed"),
    ("or_pairs", "signed"),
    ("argmax", "positive"),
    ("argmax", "signed_argmax"),
]


def _mixed_features(device: torch.device, kind: str, shape: tuple[int, ...] = (64, 3, 6)) -> Tensor:
    """Features with zeros, and values elsewhere: signed, 0/1 or positive; the first example all zero.

    Seeded here (fixed inputs whatever the learner drew before); values avoid 0, ±1 and 2 (where x, |x| and x² or
    2x coincide), and argmax sees positive values only, where the largest feature is unique (no ties)."""
    torch.manual_seed(7 + len(shape))
    present = torch.rand(shape) < 0.6
    if kind == "binary":
        values = torch.ones(shape)
    else:
        values = torch.empty(shape).uniform_(0.1 if kind == "positive" else -1.5, 1.5)
        if kind == "signed_argmax":
            values = torch.where(torch.rand(shape) < 0.15, -values.abs(), values)  # some rows all negative
        values = torch.where((values.abs() - 1).abs() < 0.02, values + 0.05, values)
    x = torch.where(present, values, 0.0)
    if kind == "signed_argmax":
        # "the largest feature" of signed inputs is the largest signed value. Rows with a positive value, or with
        # every feature present and negative, have the same label whether absent features count as 0 or not; a
        # row whose present features are all negative next to absent ones would not, so it is made all present.
        negative_only = (x.amax(-1, keepdim=True) <= 0).expand_as(x)
        x = torch.where(negative_only, -values.abs() - 0.05, x)
        x[1] = 0.0  # a row whose present features sum to 0: it has a label
        x[1, ..., 0], x[1, ..., 1] = 0.7, -0.7
    if kind == "signed":
        x[1, ..., 0], x[1, ..., 1] = 0.7, -0.7  # a pair that sums to 0 with both present: OR and AND are 1
    zero_and_tiny_rows(x, kind)
    return x.to(device)


@checker("compute_target", kind="function")
def test_compute_target(impl, device):
    for target, kind in TARGET_INPUTS:
        for shape in ((64, 3, 6), (5, 8, 2, 4)):  # extra leading axes ([... inst feats]), as the lab's plots use
            features = noted_axes(_mixed_features(device, kind, shape))
            before = features.clone()
            expected = ref.compute_target(features, target)
            what = f"compute_target(features {list(shape)}, {target!r})"
            dims = " ".join(["batch"] * (len(shape) - 2) + ["inst"]) + ("" if target == "argmax" else " out")
            got = impl(features, target)
            if isinstance(got, tuple) and hasattr(got, "values") and hasattr(got, "indices"):
                fail(
                    f"{what} returned a (values, indices) pair ({type(got).__name__}), not a tensor",
                    "torch.max(x, dim) and .max(dim) return (values, indices): take `.values`, or use amax / "
                    "torch.maximum",
                    code="return_types",
                )
            if isinstance(got, Tensor) and target != "argmax" and got.dtype == torch.bool:
                fail(
                    f"{what} returned a boolean tensor",
                    "return floats (1.0 / 0.0): `.to(features.dtype)`",
                    code="dtype",
                )
            if isinstance(got, Tensor) and target == "argmax" and got.is_floating_point():
                fail(
                    f"{what} has dtype {got.dtype}, expected torch.int64",
                    "class labels are integers: keep argmax's int64 output (and an integer NO_LABEL)",
                    code="dtype",
                )
            if isinstance(got, Tensor) and target == "argmax" and got.dtype not in (torch.int64, torch.bool):
                fail(  # an integer dtype other than int64: a conversion, not a float literal (expect_tensor's hint)
                    f"{what} has dtype {got.dtype}, expected torch.int64",
                    "class labels are int64 (torch.long), what argmax returns: drop the conversion (.int(), "
                    ".to(torch.int32), ...), or end with .long() / pass dtype=torch.long",
                    code="dtype",
                )
            if isinstance(got, Tensor) and tuple(got.shape) == (*expected.shape, 1):
                fail(
                    f"{what} has shape {tuple(got.shape)}, expected {tuple(expected.shape)}",
                    "drop the trailing size-1 axis: no keepdim=True (or .squeeze(-1) at the end)",
                    code="keepdim",
                )
            R.argmax_dropped_rows(got, expected, what)
            fixed_axis_hint(got, expected, what, shape, features, target)
            got = expect_tensor(
                got,
                what,
                shape=tuple(expected.shape),
                dims=dims,
                dtype=expected.dtype,
                device=device,
            )
            if not torch.equal(features, before):
                fail(
                    f"{what} changed its input in place",
                    "compute the target without writing into `features`",
                    code="in_place",
                )
            labelling_readings(got, expected, features, target, what)
            if not torch.equal(got, expected):
                listed = [v for _, _, v in target_mistakes(features, target)]
                pair_reads_hint(impl, features, target, got, listed)
                pair_sign_hint(features, target, got, expected, listed)
            expect_matches(
                got,
                expected,
                what,
                target_mistakes(features, target),
                dims=dims,
                hint={
                    "or_pairs": "OR of pair (2j, 2j+1): 1.0 when at least one is non-zero, else 0.0",
                    "and_pairs": "AND of pair (2j, 2j+1): 1.0 only when both are non-zero, else 0.0",
                    "max_pairs": "max(x_2j, x_2j+1) of each pair, elementwise: torch.maximum",
                    "square": "x² of every feature (x ** 2)",
                    "abs": "|x| of every feature",
                    "identity": "the identity target is the features themselves",
                    "argmax": "the index of the largest feature (argmax over the last axis), -1 where none is present",
                }[target],
                code=target,
                reference=call(ref.compute_target, features, target),
            )
    argmax_negative_rows(impl, device)  # present values all negative: max is 0, yet a label
    constant_rows(impl, device)  # every present feature equal, or a single feature
    return "7 targets, with extra leading axes"


# --------------------------------------------------------------------------------------------
# Cross-entropy loss
# --------------------------------------------------------------------------------------------
def _ce_inputs(device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """Logits, labels (a different number unlabelled per instance, instance 2 with a single label) and an
    importance with a different row per instance, none of them 1 where it matters, one of them 0 (allowed)."""
    torch.manual_seed(3)
    batch, n_inst, n_classes = 32, 3, 5
    logits = torch.randn(batch, n_inst, n_classes) * 2 + torch.linspace(-1, 1, n_classes)
    labels = torch.randint(0, n_classes, (batch, n_inst))
    labels[torch.rand(batch, n_inst) < 0.3] = NO_LABEL
    labels[1:, 2] = NO_LABEL  # instance 2: a single labelled example
    labels[0, 2] = 3
    importance = torch.tensor([[1.3, 0.5, 2.0, 0.0, 1.5], [0.2, 1.1, 0.9, 3.0, 0.7], [0.8, 1.4, 0.6, 1.2, 0.45]])
    return logits.to(device), labels.to(device), importance.to(device)


# Mistakes that need several instances to show (or that coincide with the right answer on one instance alone).
_MULTI_INSTANCE = ("instances", "importance_first_instance", "softmax_axis", "global_mean", "pooled_times_instances")


def _per_instance_mistakes(logits: Tensor, labels: Tensor, importance: Tensor) -> list[tuple[str, str, Tensor]]:
    """The known mistakes' losses on each instance alone, stacked to [inst]."""
    per_k = [
        cross_entropy_mistakes(logits[:, k : k + 1], labels[:, k : k + 1], importance[k : k + 1])
        for k in range(logits.shape[1])
    ]
    return [
        (code, hint, torch.stack([per_k[k][j][2] for k in range(len(per_k))]))
        for j, (code, hint, _) in enumerate(per_k[0])
        if code not in _MULTI_INSTANCE
    ]


class _EachInstance(Reference):
    """The solution's loss of each instance alone, stacked to [inst]: one call per one-instance slice, so the
    one-change diagnosis edits `cross_entropy_loss` itself."""

    def run(self, fn=None):
        logits, labels, importance = (t.detach() for t in self.args)
        one = lambda k: (logits[:, k : k + 1].clone(), labels[:, k : k + 1].clone(), importance[k : k + 1].clone())
        return torch.stack([(fn or self.fn)(*one(k)).detach() for k in range(logits.shape[1])])


def _loss_value(impl, args: tuple[Tensor, ...], what: str, device: torch.device) -> Tensor:
    out = returned(R.loss_call(impl, args), what)
    out = expect_tensor(out, what, device=device, finite=False)
    if out.numel() != 1:
        fail(
            f"{what} should be a scalar (0-dim) tensor, got shape {tuple(out.shape)}",
            "sum the per-instance losses over instances and average over the labelled examples of each, so one "
            "number comes back",
            code="not_scalar",
        )
    if not out.is_floating_point():
        fail(f"{what} has dtype {out.dtype}, expected a float tensor", "keep the logits' dtype", code="dtype")
    if not torch.isfinite(out).all():
        fail(
            f"{what} is {out.item()}",
            "an instance whose examples are all unlabelled must add 0, not NaN: divide by the number of labelled "
            "examples clamped at 1, and keep -1 labels out of gather (labels.clamp(min=0))",
            code="not_finite",
        )
    return out.reshape(())


@checker("cross_entropy_loss", kind="function")
def test_cross_entropy_loss(impl, device):
    logits, labels, importance = _ce_inputs(device)
    logits.requires_grad_()
    got = ce_first_call(_loss_value, impl, (logits, labels, importance), device)
    expected = ref.cross_entropy_loss(logits, labels, importance)
    mistakes = cross_entropy_mistakes(logits.detach(), labels, importance)
    # Each instance alone (the loss of a one-instance slice is that instance's term): a vector the generic
    # diagnoses can read (an instance reused, a constant factor), as well as the total.
    per_inst = torch.stack(
        [
            _loss_value(
                impl,
                (logits[:, k : k + 1], labels[:, k : k + 1], importance[k : k + 1]),
                f"cross_entropy_loss on instance {k} alone",
                device,
            )
            for k in range(logits.shape[1])
        ]
    )
    expected_per_inst = torch.stack(
        [ref.cross_entropy_loss(logits[:, k : k + 1], labels[:, k : k + 1], importance[k : k + 1]) for k in range(3)]
    )
    general = (
        "per instance: mean over labelled examples of importance[inst, label] · (−log softmax(logits)[label]); "
        "then sum over instances"
    )
    # The total first when it is right or matches a known mistake; otherwise each instance's term, which the
    # generic diagnoses can read (a sign, a constant factor, one instance wrong), then the total again.
    close = lambda value: bool(torch.allclose(got.detach(), value.to(got.dtype), rtol=1e-4, atol=1e-5))
    total = call(ref.cross_entropy_loss, logits, labels, importance, pick=Tensor.detach)
    if close(expected.detach()) or any(close(value) for _, _, value in mistakes):
        expect_matches(got.detach(), expected.detach(), "the loss", mistakes, hint=general, reference=total)
    one_instance_only(close(expected.detach()), per_inst, expected_per_inst)
    whole_number_losses(per_inst, expected_per_inst)
    label_smoothing_failure(logits, labels, importance, per_inst, expected_per_inst)
    value = lambda *a: _loss_value(impl, a, "cross_entropy_loss on one labelled example", device)
    with examples_alone(value, ref.cross_entropy_loss, (logits, labels, importance), per_inst, expected_per_inst):
        expect_matches(
            per_inst.detach(),
            expected_per_inst.detach(),
            "the loss of each instance alone",
            _per_instance_mistakes(logits.detach(), labels, importance),
            dims="inst",
            hint=general,
            reference=_EachInstance(ref.cross_entropy_loss, (logits, labels, importance)),
        )
    if not close(expected.detach()) and generic_diagnosis(got.detach()[None], expected.detach()[None]) is None:
        instances_combined_failure(value, ref.cross_entropy_loss, (logits, labels, importance), got, expected)
    expect_matches(got.detach(), expected.detach(), "the loss", hint=general, reference=total)
    R.confident_misprediction(lambda *a: _loss_value(impl, a, "the loss on confident mispredictions", device), device)
    if not got.requires_grad:
        fail(
            "the loss has no gradient",
            "don't detach the logits or compute the loss under torch.no_grad()",
            code="no_grad",
        )
    (grad,) = torch.autograd.grad(got, logits, allow_unused=True)
    (expected_grad,) = torch.autograd.grad(expected, logits)
    expect_matches(
        torch.zeros_like(logits) if grad is None else grad,
        expected_grad,
        "the gradient of the loss with respect to the logits",
        dims="batch inst classes",
        hint="the gradient flows through log_softmax to every logit of a labelled example (none to unlabelled ones)",
        code="gradient",
    )
    all_empty = torch.full_like(labels, NO_LABEL)
    empty = _loss_value(impl, (logits.detach(), all_empty, importance), "the loss when no example is labelled", device)
    if abs(empty.item()) > 1e-6:
        fail(
            f"with every label NO_LABEL the loss is {empty.item():.4g}, expected 0",
            "leave NO_LABEL examples out: divide by the number of labelled examples (at least 1)",
            code="no_label",
        )
    return "total, each instance alone, gradient, and no labels at all"


# --------------------------------------------------------------------------------------------
# Basis alignment
# --------------------------------------------------------------------------------------------
def _alignment_input(device: torch.device) -> Tensor:
    torch.manual_seed(5)
    W = torch.randn(4, 3, 6) * torch.linspace(0.5, 2.0, 6)  # features of different norms
    W[0, :, 1] = torch.tensor([0.0, -2.0, 0.0])  # on one (negative) axis: alignment 1
    W[1, :, 2] = torch.tensor([1.0, -1.0, 1.0])  # spread evenly: 1/sqrt(3)
    W[2, :, 3] = 0.0  # dropped features: 0 (in two instances, so a zero-column slip is not one instance's)
    W[0, :, 5] = 0.0
    W[3] *= 3.0  # a larger scale must not matter
    return W.to(device)


@checker("basis_alignment", kind="function")
def test_basis_alignment(impl, device):
    W = _alignment_input(device)
    before = W.clone()
    got = returned(alignment_call(impl, W), "basis_alignment(W)")
    merged_axes_hint(got, ref.basis_alignment(before), "basis_alignment(W)", "inst feats")
    got = expect_tensor(got, "basis_alignment(W)", shape=(4, 6), dims="inst feats", device=device, finite=False)
    if not torch.equal(W, before):
        fail("basis_alignment changed W in place", "work on copies (no in-place ops on W)", code="in_place")
    if not got.is_floating_point():
        fail(
            f"basis_alignment(W) has dtype {got.dtype}, expected {W.dtype}",
            "return the ratio max|W_ki| / ‖Wᵢ‖ (floats), not argmax indices",
            code="dtype",
        )
    if not torch.isfinite(got[W.norm(dim=1) > 0]).all():
        fail("basis_alignment(W) has NaN or infinite values for non-zero features", code="not_finite")
    if not torch.isfinite(got).all():
        fail(
            "basis_alignment(W) is NaN for the features with Wᵢ = 0 (instance 0 feature 5, instance 2 feature 3)",
            "0 / 0 is NaN: return 0 where the norm is 0 (torch.where(norm > 0, ..., 0.0), with a clamped denominator)",
            code="not_finite",
        )
    expected = ref.basis_alignment(W)
    expect_tensor(got, "basis_alignment(W)", dtype=W.dtype)
    zero_column_hint(got, expected, W)
    _alignment_structure(got, expected, W)
    expect_matches(
        got,
        expected,
        "basis_alignment(W)",
        alignment_mistakes(W),
        dims="inst feats",
        hint="max over neurons (dim 1) of |W_ki|, divided by ‖Wᵢ‖ over the same axis",
        reference=call(ref.basis_alignment, W),
    )
    A.small_column(impl, W)
    A.size_one_calls(impl, W)
    return None


def _alignment_structure(got: Tensor, expected: Tensor, W: Tensor) -> None:
    """Name an unexplained alignment by what its numerator or denominator does not vary with.

    got = N / D. With the right denominator ‖Wᵢ‖, N = got · ‖Wᵢ‖; with the right numerator max_k |W_ki|,
    D = max_k |W_ki| / got. A factor that is the same for every instance (or every feature of an instance) while
    the right one is not was reduced over that axis too: a fact about the output, whatever the code.
    """
    mistakes = alignment_mistakes(W)
    close = lambda a, b: bool(torch.allclose(a, b, rtol=1e-4, atol=1e-5))
    if close(got, expected) or any(close(got, v) for _, _, v in mistakes):
        return
    if generic_diagnosis(got.detach(), expected.detach(), "inst feats") is not None:
        return
    A.constant_output_hint(got, W)
    A.parts_read_back(got, W)
    A.instances_alike_hint(got, expected, W)
    affine_alignment_hint(got, expected, W)
    nonzero = W.norm(dim=1) > 0
    if not bool((got[nonzero] > 0).all()):
        return
    g = got.detach().double().cpu()
    norm, top, nz = W.double().cpu().norm(dim=1), W.double().cpu().abs().amax(1), nonzero.cpu()
    numerator = torch.where(nz, g * norm, torch.nan)
    denominator = torch.where(nz, top / g.clamp_min(1e-300), torch.nan)

    def flat_along(value: Tensor, axis: int) -> bool:
        lo = torch.where(value.isnan(), torch.inf, value).amin(axis, keepdim=True)
        hi = torch.where(value.isnan(), -torch.inf, value).amax(axis, keepdim=True)
        return bool(((hi - lo) <= 1e-4 * hi.abs()).all())

    for value, part, right in (
        (numerator, "numerator", "max over neurons |W_ki|"),
        (denominator, "denominator", "‖Wᵢ‖"),
    ):
        for axis, name, other in ((0, "instance", "instances (dim 0)"), (1, "feature", "features (dim 2)")):
            if flat_along(value, axis):
                fail(
                    f"basis_alignment(W): with the other part right, your {part} is the same for every {name}",
                    f"the {part} is each feature's own {right}, one per (instance, feature): it was also reduced "
                    f"over the {other}; reduce over the neurons only (dim 1 of W [inst, neurons, feats])",
                    code=f"{part}_over_{'instances' if axis == 0 else 'features'}",
                )
