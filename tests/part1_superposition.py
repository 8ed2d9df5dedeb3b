"""Checkers for part 1 (superposition in a non-privileged basis).

Call them from the notebook as `tests.part1_superposition.test_<exercise>(ToyModel)`, or with
`CorrelatedToyModel` (the subclass that holds the correlated generators) for exercises 4 and 5.
Deterministic exercises are compared with the formula on inputs where every term matters;
the generators are tested on the statistics that define them, never on particular random draws.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from solutions.part1_superposition import CorrelatedToyModel as RefCorrelatedToyModel
from solutions.part1_superposition import ToyModelConfig
from tests.checking import (
    FAILURE_PROBABILITY,
    bernstein_tolerance,
    checker,
    expect_frequency,
    expect_matches,
    expect_scalar,
    expect_tensor,
    fail,
)

N_SAMPLES = 20_000  # examples drawn by each generator check: tolerances of about ±1% on a frequency
# A correct generator can produce a present feature whose uniform value is exactly 0.0 (torch.rand
# has 2^-24 resolution), which then looks absent. Over the <= 250k draws of a check the number of
# such zeros is Poisson with mean < 0.015, so P(more than 3) < 2e-9: structural checks allow 3.
ZERO_DRAW_ALLOWANCE = 3


GENERATORS = ("generate_correlated_features", "generate_anticorrelated_features", "generate_uncorrelated_features")


def _expect_class(cls: object, expected: str = "ToyModel", methods: tuple[str, ...] = ()) -> type:
    """`cls` is a class (not an instance) with every method in `methods` (the generators live in a subclass)."""
    if not isinstance(cls, type):
        fail(
            f"expected the {expected} class, got {type(cls).__name__}",
            f"pass the class itself: test_x({expected})",
            code="not_class",
        )
    missing = [name for name in methods if not callable(getattr(cls, name, None))]
    if missing:
        fail(
            f"the class {cls.__name__} has no method {', '.join(f'`{name}`' for name in missing)}",
            f"pass {expected}, the ToyModel subclass whose body defines the generators: test_x({expected})",
            code="missing_method",
        )
    return cls


def _model(ToyModel: type, cfg: ToyModelConfig, device: torch.device, **kwargs) -> torch.nn.Module:
    return _expect_class(ToyModel)(cfg, device=device, **kwargs)


def _set_params(model: torch.nn.Module, seed_shift: int = 0) -> tuple[Tensor, Tensor]:
    """Give W and b_final distinctive values: different per instance, a bias with both signs."""
    n_inst, d_hidden, n_feats = model.W.shape
    g = torch.Generator().manual_seed(100 + seed_shift)
    W = torch.randn(n_inst, d_hidden, n_feats, generator=g)
    b = torch.randn(n_inst, n_feats, generator=g) * 0.5
    with torch.no_grad():
        model.W.copy_(W)
        model.b_final.copy_(b)
    return model.W.detach().clone(), model.b_final.detach().clone()


# --------------------------------------------------------------------------------------------
# forward
# --------------------------------------------------------------------------------------------
def _forward_candidates(W: Tensor, b: Tensor, x: Tensor) -> tuple[Tensor, list[tuple[str, str, Tensor]]]:
    """The right answer and what the usual mistakes would give, for x: [... inst feats]."""
    h = torch.einsum("...if,idf->...id", x, W)
    pre = torch.einsum("...id,idf->...if", h, W)
    right = F.relu(pre + b)
    h_relu = torch.einsum("...id,idf->...if", F.relu(h), W)
    mistakes = [
        ("no_relu", "apply a ReLU to the output: ReLU(WᵀWx + b)", pre + b),
        ("bias_after_relu", "add b_final before the ReLU, not after it", F.relu(pre) + b),
        ("no_bias", "add b_final before the ReLU", F.relu(pre)),
        (
            "hidden_relu",
            "this model has no ReLU on the hidden layer (that is part 2's model): only on the output",
            F.relu(h_relu + b),
        ),
        (
            "instance_mixing",
            "each instance must use its own W: don't sum or mix over the `inst` axis",
            F.relu(torch.einsum("...d,idf->...if", h.sum(-2), W) + b),
        ),
    ]
    return right, mistakes


@checker("forward")
def test_forward(ToyModel: type, device: torch.device) -> str:
    cfg = ToyModelConfig(n_inst=3, n_features=5, d_hidden=2)
    model = _model(ToyModel, cfg, device)
    W, b = _set_params(model)
    x = torch.rand(7, 3, 5, device=device) * 2 - 0.5  # some negative inputs so every sign path is exercised
    with torch.no_grad():
        out = model(x)
    expect_tensor(out, "forward(x)", shape=(7, 3, 5), dims="batch inst feats", dtype=x.dtype, device=device)
    right, mistakes = _forward_candidates(W, b, x)
    expect_matches(out, right, "forward(x)", mistakes, dims="batch inst feats")

    # Edge shapes the docstring promises: extra leading axes, no batch axis, one instance and one feature.
    for shape in [(2, 4, 3, 5), (3, 5)]:
        x2 = torch.rand(shape, device=device)
        with torch.no_grad():
            out2 = model(x2)
        hint = "use `...` for the leading axes in your einsum so any number of them works"
        if not isinstance(out2, Tensor) or out2.shape != x2.shape:
            got = tuple(out2.shape) if isinstance(out2, Tensor) else type(out2).__name__
            fail(f"forward on input of shape {shape} returned {got}, expected {shape}", hint, code="leading_dims")
        expect_matches(out2, _forward_candidates(W, b, x2)[0], f"forward on input of shape {shape}")
    one = _model(ToyModel, ToyModelConfig(n_inst=1, n_features=1, d_hidden=1), device)
    W1, b1 = _set_params(one, seed_shift=1)
    x1 = torch.rand(4, 1, 1, device=device)
    with torch.no_grad():
        out1 = one(x1)
    expect_tensor(out1, "forward with n_inst=1, n_features=1", shape=(4, 1, 1), dims="batch inst feats")
    expect_matches(
        out1, _forward_candidates(W1, b1, x1)[0], "forward with n_inst=1, n_features=1", dims="batch inst feats"
    )
    return "ReLU(WᵀWx + b) for every instance, any leading axes"


# --------------------------------------------------------------------------------------------
# Statistics shared by the generator checks
# --------------------------------------------------------------------------------------------
def _check_values(batch: Tensor, what: str) -> Tensor:
    """Values lie in [0, 1] and are not all equal. Returns the presence mask (value != 0)."""
    if (batch < 0).any() or (batch > 1).any():
        fail(
            f"{what} has values outside [0, 1] (min {batch.min().item():.3g}, max {batch.max().item():.3g})",
            "present features take values from U[0, 1] (torch.rand), absent ones are exactly 0",
            code="value_range",
        )
    present = batch != 0
    values = batch[present]
    if values.numel() < 100:
        fail(f"{what} has almost no present features ({values.numel()})", "check the presence mask", code="frequency")
    if values.std() < 1e-3:
        fail(
            f"{what}: every present feature has the value {values[0].item():.3g}",
            "magnitudes look constant: draw each present feature's value from U[0, 1]",
            code="constant_magnitude",
        )
    return present


def _check_value_moments(batch: Tensor, present: Tensor, what: str, n_tests: int) -> None:
    """Pooled over everything present: mean 1/2 and mean square 1/3, as for U[0, 1]."""
    values = batch[present].double()
    n = values.numel()
    delta = FAILURE_PROBABILITY / n_tests
    tol_mean = bernstein_tolerance(n, 1 / 12, 1.0, delta)
    tol_sq = bernstein_tolerance(n, 4 / 45, 1.0, delta)  # Var(U^2) = 1/5 - 1/9
    mean, mean_sq = values.mean().item(), (values**2).mean().item()
    if abs(mean - 0.5) > tol_mean or abs(mean_sq - 1 / 3) > tol_sq:
        fail(
            f"{what}: present values have mean {mean:.3f} and mean square {mean_sq:.3f}, "
            f"expected 0.500 ± {tol_mean:.3f} and 0.333 ± {tol_sq:.3f} for U[0, 1]",
            "draw the values with torch.rand, separately from the presence draw",
            code="value_distribution",
        )


def _check_values_independent_of_presence(batch: Tensor, present: Tensor, p: Tensor, what: str, n_tests: int) -> None:
    """Per (inst, feat), the mean present value is 1/2. Catches values reusing the presence random numbers."""
    counts = present.sum(0).double()
    sums = torch.where(present, batch, 0.0).sum(0).double()
    for idx in torch.nonzero(counts > 0).tolist():
        n = int(counts[tuple(idx)])
        mean = (sums[tuple(idx)] / n).item()
        tol = bernstein_tolerance(n, 1 / 12, 1.0, FAILURE_PROBABILITY / n_tests)
        if abs(mean - 0.5) > tol:
            hint = "values should not depend on presence: use a second, separate rand call for the values"
            pi = p[tuple(idx)].item()
            if abs(mean - pi / 2) < tol or abs(mean - (1 + pi) / 2) < tol:
                hint = (
                    "values look like the same random numbers that decided presence (mean ≈ p/2): "
                    "draw the values with a separate rand call"
                )
            fail(
                f"{what}: present values of inst {idx[0]}, feature {idx[1]} have mean {mean:.3f}, "
                f"expected 0.500 ± {tol:.3f}",
                hint,
                code="values_reuse_mask",
            )


# The generators take their probabilities as an argument `p`. Their checks build the model with this
# (otherwise unused) feature_probability, so using self.feature_probability instead shows up clearly.
DECOY_PROBABILITY = 0.97


def _generator_model(CorrelatedToyModel: type, device: torch.device, method: str) -> torch.nn.Module:
    """The learner's CorrelatedToyModel, whose generator `method` is under test, with the decoy probability."""
    cls = _expect_class(CorrelatedToyModel, "CorrelatedToyModel", (method,))
    return cls(ToyModelConfig(n_inst=3, n_features=4, d_hidden=2), feature_probability=DECOY_PROBABILITY, device=device)


def _presence_hint(observed: float, expected: float) -> str:
    if abs(observed - DECOY_PROBABILITY) < 0.01:
        return "use the probabilities passed in as `p`, not self.feature_probability"
    if abs(observed - (1 - expected)) < 0.02 and abs(expected - 0.5) > 0.05:
        return "the frequency is close to 1 - p: is the mask `rand > p` instead of `rand < p`?"
    return "each feature should be present with its own probability (feature_probability[inst, feat], or `p`)"


def _check_presence_all_rows_differ(present: Tensor, what: str) -> None:
    if present.shape[0] > 1 and (present == present[:1]).all():
        fail(
            f"{what}: every example in the batch has the same features present",
            "draw presence separately for every batch element (a mask of shape [batch, inst, feats])",
            code="shared_over_batch",
        )


def _check_pairwise_independence(present: Tensor, p: Tensor, what: str, n_tests: int, hint: str, code: str) -> None:
    """P(both present) = p_a p_b for every pair of columns (same instance, or same feature across instances)."""
    n, n_inst, n_feats = present.shape
    pf = present.double()
    joint_feats = torch.einsum("bif,big->ifg", pf, pf) / n  # [inst feats feats]
    joint_inst = torch.einsum("bif,bjf->fij", pf, pf) / n  # [feats inst inst]
    pairs = [
        (joint_feats[i, a, c], p[i, a] * p[i, c], f"inst {i}, features {a} and {c}")
        for i in range(n_inst)
        for a in range(n_feats)
        for c in range(a + 1, n_feats)
    ]
    pairs += [
        (joint_inst[f, i, j], p[i, f] * p[j, f], f"feature {f}, instances {i} and {j}")
        for f in range(n_feats)
        for i in range(n_inst)
        for j in range(i + 1, n_inst)
    ]
    for observed, expected, where in pairs:
        expected = expected.item()
        tol = bernstein_tolerance(n, expected * (1 - expected), 1.0, FAILURE_PROBABILITY / n_tests)
        if abs(observed.item() - expected) > tol:
            fail(
                f"{what}: {where} are both present in {observed.item():.2%} of examples; "
                f"independent draws give {expected:.2%} ± {tol:.2%}",
                hint,
                code=code,
            )


def _check_presence_and_values(
    batch: Tensor, present: Tensor, p: Tensor, what: str, n_tests: int, hint: Callable[[float, float], str]
) -> None:
    """Each (inst, feature) present with probability p, and present values U[0, 1] independent of presence."""
    expect_frequency(
        present.double().mean(0),
        p,
        batch.shape[0],
        f"{what}: presence frequency",
        dims="inst feature",
        hint=hint,
        code="presence_probability",
        n_tests=n_tests,
    )
    _check_values_independent_of_presence(batch, present, p, what, n_tests)
    _check_value_moments(batch, present, what, n_tests)


def check_independent_features(batch: Tensor, p: Tensor, what: str) -> None:
    """Everything `generate_batch` promises, for a batch [n inst feats] and probabilities p [inst feats]."""
    _, n_inst, n_feats = batch.shape
    n_pairs = n_inst * n_feats * (n_feats - 1) // 2 + n_feats * n_inst * (n_inst - 1) // 2
    n_tests = 2 + 2 * n_inst * n_feats + n_pairs
    present = _check_values(batch, what)
    _check_presence_all_rows_differ(present, what)
    _check_presence_and_values(batch, present, p, what, n_tests, _presence_hint)
    _check_pairwise_independence(
        present,
        p,
        what,
        n_tests,
        "features must be present independently: draw one presence per batch element, "
        "instance and feature (don't share one mask across features or instances)",
        code="shared_mask",
    )


def _generator_output(batch: object, what: str, shape: tuple[int, ...], device: torch.device) -> Tensor:
    return expect_tensor(batch, what, shape=shape, dims="batch inst feats", dtype=torch.float32, device=device)


# Probabilities that differ per instance and per feature, so swapped axes, 1 - p and shared masks show up.
P_TABLE = torch.tensor([[0.05, 0.2, 0.7, 0.9], [0.3, 0.6, 0.1, 0.75], [0.8, 0.15, 0.35, 0.4]])


@checker("generate_batch")
def test_generate_batch(ToyModel: type, device: torch.device) -> str:
    cfg = ToyModelConfig(n_inst=3, n_features=4, d_hidden=2)
    model = _model(ToyModel, cfg, device, feature_probability=P_TABLE.to(device))
    batch = _generator_output(model.generate_batch(N_SAMPLES), "generate_batch(n)", (N_SAMPLES, 3, 4), device)
    check_independent_features(batch.cpu(), P_TABLE, "the batch")
    return f"presence rates, U[0, 1] values and independence on {N_SAMPLES} examples"


# --------------------------------------------------------------------------------------------
# calculate_loss
# --------------------------------------------------------------------------------------------
@checker("calculate_loss")
def test_calculate_loss(ToyModel: type, device: torch.device) -> str:
    cfg = ToyModelConfig(n_inst=3, n_features=5, d_hidden=2)
    importance = torch.tensor([[1.0, 0.8, 0.5, 0.3, 0.1], [0.2, 1.5, 0.7, 1.0, 0.4], [2.0, 0.1, 0.9, 0.6, 1.2]])
    model = _model(ToyModel, cfg, device, importance=importance.to(device))
    batch = torch.rand(6, 3, 5, device=device)
    out = (torch.rand(6, 3, 5, device=device) * 1.5).requires_grad_()
    loss = model.calculate_loss(out, batch)
    expect_scalar(loss, "calculate_loss(out, batch)")
    if not loss.requires_grad:
        fail(
            "the loss does not depend on `out` through autograd",
            "compute it with torch operations on `out` (no .item(), .detach() or numpy)",
            code="no_grad",
        )
    err = (batch - out.detach()) ** 2
    imp = importance.to(device)
    right = (imp * err).mean(dim=(0, 2)).sum()
    mistakes = [
        ("no_importance", "weight each feature's squared error by self.importance", err.mean(dim=(0, 2)).sum()),
        (
            "mean_over_instances",
            "sum over instances (each instance is its own model); average only batch and features",
            (imp * err).mean(),
        ),
        (
            "sum_over_features",
            "average over features as well as the batch, don't sum over them",
            (imp * err).sum(-1).mean(0).sum(),
        ),
        ("sum_over_batch", "average over the batch, don't sum over it", (imp * err).sum(0).mean(-1).sum()),
        (
            "not_squared",
            "the error is squared: (batch - out) ** 2",
            (imp * (batch - out.detach()).abs()).mean(dim=(0, 2)).sum(),
        ),
        (
            "importance_squared",
            "multiply by the importance once, outside the square",
            ((imp * (batch - out.detach())) ** 2).mean(dim=(0, 2)).sum(),
        ),
    ]
    expect_matches(loss.detach(), right, "calculate_loss", mistakes)
    return "importance-weighted squared error, mean over batch and features, sum over instances"


# --------------------------------------------------------------------------------------------
# Correlated, anticorrelated and uncorrelated generators
# --------------------------------------------------------------------------------------------
P_PAIRS = torch.tensor([[0.1, 0.3], [0.45, 0.05], [0.2, 0.25]])  # [inst pairs], all <= 1/2 for anticorrelation


def _pair_probabilities(p_pairs: Tensor) -> Tensor:
    return p_pairs.repeat_interleave(2, dim=1)  # [inst 2*pairs]: pair j -> features 2j, 2j + 1


def _count_layout_breaks(present: Tensor, rule: str, adjacent: bool = True) -> int:
    n_feats = present.shape[-1]
    n_pairs = n_feats // 2
    first = present[..., 0::2] if adjacent else present[..., :n_pairs]
    second = present[..., 1::2] if adjacent else present[..., n_pairs:]
    broken = (first != second) if rule == "together" else (first & second)
    return int(broken.sum())


def _check_pair_values_independent(batch: Tensor, what: str) -> None:
    a, b = batch[..., 0::2], batch[..., 1::2]
    same = ((a == b) & (a != 0)).sum().item()
    if same > ZERO_DRAW_ALLOWANCE:
        fail(
            f"{what}: in {same} examples both features of a pair have exactly the same value",
            "draw the two features' values separately (a value tensor with the full [batch, inst, 2*pairs] shape)",
            code="shared_values",
        )


def _check_pair_activity_independent(active: Tensor, p_active: Tensor, what: str, n_tests: int) -> None:
    """Pairs are independent of each other, within an instance and across instances."""
    _check_pairwise_independence(
        active, p_active, what, n_tests, "each pair (and each instance) needs its own random draws", code="shared_mask"
    )


@checker("generate_correlated_features")
def test_generate_correlated_features(CorrelatedToyModel: type, device: torch.device) -> str:
    model = _generator_model(CorrelatedToyModel, device, "generate_correlated_features")
    what = "the batch"
    batch = _generator_output(
        model.generate_correlated_features(N_SAMPLES, P_PAIRS.to(device)), "the output", (N_SAMPLES, 3, 4), device
    ).cpu()
    n_tests = 2 + 12 + 12 + 9
    present = _check_values(batch, what)
    breaks = _count_layout_breaks(present, "together")
    if breaks > ZERO_DRAW_ALLOWANCE:
        if _count_layout_breaks(present, "together", adjacent=False) <= ZERO_DRAW_ALLOWANCE:
            fail(
                f"{what}: the pairs are features (j, j + n_pairs)",
                "pair j must occupy the adjacent features 2j and 2j + 1 (repeat with '(pair two)', not '(two pair)')",
                code="pair_layout",
            )
        fail(
            f"{what}: in {breaks} cases one feature of a pair is present without the other",
            "both features of a correlated pair share one presence draw (draw [batch, inst, pairs], then repeat)",
            code="not_together",
        )
    p = _pair_probabilities(P_PAIRS)
    _check_presence_and_values(batch, present, p, what, n_tests, _presence_hint)
    _check_pair_values_independent(batch, what)
    _check_pair_activity_independent(present[..., 0::2], P_PAIRS, what, n_tests)
    return "pairs on together with probability p, independent values, independent pairs"


@checker("generate_anticorrelated_features")
def test_generate_anticorrelated_features(CorrelatedToyModel: type, device: torch.device) -> str:
    model = _generator_model(CorrelatedToyModel, device, "generate_anticorrelated_features")
    what = "the batch"
    batch = _generator_output(
        model.generate_anticorrelated_features(N_SAMPLES, P_PAIRS.to(device)), "the output", (N_SAMPLES, 3, 4), device
    ).cpu()
    n_tests = 2 + 12 + 12 + 9
    present = _check_values(batch, what)
    both = _count_layout_breaks(present, "never")
    if both > 0:
        fail(
            f"{what}: in {both} cases both features of a pair are present",
            "an anticorrelated pair is never on together: make the second feature's presence exclude the first's",
            code="both_present",
        )

    def hint(observed: float, expected: float) -> str:
        if abs(observed - expected * (1 - expected)) < 0.01:
            return (
                "this feature's probability is p(1 - p): it is only drawn when the other is absent. "
                "Draw 'pair active' with probability 2p, then pick one of the two with probability 1/2"
            )
        if abs(observed - expected / 2) < 0.01:
            return "each feature is present with p/2: the pair should be active with probability 2p, not p"
        return _presence_hint(observed, expected)

    p = _pair_probabilities(P_PAIRS)
    _check_presence_and_values(batch, present, p, what, n_tests, hint)
    active = present[..., 0::2] | present[..., 1::2]
    _check_pair_activity_independent(active, 2 * P_PAIRS, what, n_tests)
    return "never both on, each feature on with probability p, independent pairs"


@checker("generate_uncorrelated_features")
def test_generate_uncorrelated_features(CorrelatedToyModel: type, device: torch.device) -> str:
    model = _generator_model(CorrelatedToyModel, device, "generate_uncorrelated_features")
    what = "the batch"
    batch = _generator_output(
        model.generate_uncorrelated_features(N_SAMPLES, P_TABLE.to(device)), "the output", (N_SAMPLES, 3, 4), device
    ).cpu()
    check_independent_features(batch, P_TABLE, what)
    return "presence rates, U[0, 1] values and independence"


# --------------------------------------------------------------------------------------------
# The combined batch
# --------------------------------------------------------------------------------------------
def _with_reference_generators(CorrelatedToyModel: type) -> type:
    """A subclass of the learner's class with the reference generators as its methods, to test only the combination."""
    return type(
        "ProbeToyModel", (CorrelatedToyModel,), {name: getattr(RefCorrelatedToyModel, name) for name in GENERATORS}
    )


@checker("generate_combined_batch")
def test_generate_combined_batch(CorrelatedToyModel: type, device: torch.device) -> str:
    Probe = _with_reference_generators(_expect_class(CorrelatedToyModel, "CorrelatedToyModel", GENERATORS))
    what = "the batch"
    # 2 correlated pairs, 1 anticorrelated pair, 3 uncorrelated features; pair members share a probability.
    p = torch.tensor(
        [[0.2, 0.2, 0.4, 0.4, 0.3, 0.3, 0.1, 0.6, 0.85], [0.5, 0.5, 0.05, 0.05, 0.15, 0.15, 0.7, 0.25, 0.45]]
    )
    cfg = ToyModelConfig(n_inst=2, n_features=9, d_hidden=2, n_correlated_pairs=2, n_anticorrelated_pairs=1)
    model = Probe(cfg, feature_probability=p.to(device), device=device)
    batch = _generator_output(model.generate_batch(N_SAMPLES), "the output", (N_SAMPLES, 2, 9), device).cpu()
    n_tests = 2 + 18 + 18
    present = _check_values(batch, what)
    corr, anti = present[..., :4], present[..., 4:6]
    if _count_layout_breaks(corr, "together") > ZERO_DRAW_ALLOWANCE or _count_layout_breaks(anti, "never") > 0:
        fail(
            f"{what}: the first 4 features are not correlated pairs and/or features 4-5 are not an anticorrelated pair",
            "concatenate the blocks in the order [correlated | anticorrelated | uncorrelated]",
            code="block_order",
        )

    def hint(observed: float, expected: float) -> str:
        return (
            "a block got the wrong probabilities: pair j of a block uses the probability of its first feature "
            "(slice with a step of 2), and the uncorrelated block uses the remaining features' probabilities"
        )

    expect_frequency(
        present.double().mean(0),
        p,
        N_SAMPLES,
        f"{what}: presence frequency",
        dims="inst feature",
        hint=hint,
        code="block_probability",
        n_tests=n_tests,
    )

    # With no pairs, the combined batch must behave like the original generate_batch.
    plain = Probe(
        ToyModelConfig(n_inst=3, n_features=4, d_hidden=2), feature_probability=P_TABLE.to(device), device=device
    )
    batch = _generator_output(
        plain.generate_batch(N_SAMPLES), "the output with no pairs", (N_SAMPLES, 3, 4), device
    ).cpu()
    check_independent_features(batch, P_TABLE, f"{what} with no pairs")
    return "blocks in order with the right probabilities; no pairs = independent features"
