"""The catalogue of known mistakes for part 1's checkers (`tests.part1_superposition`), and the statistics that
tell a random generator's mistakes apart. Part 2's checkers reuse both: its models are part 1's with a hidden
ReLU (and separate write weights), and its batch draws values from U[-1, 1] instead of U[0, 1].

* Deterministic exercises (forward passes, losses): each builder returns the reference value and what each
  realistic buggy implementation (a mutant of the reference) returns on the same inputs, as (code, hint, value)
  triples for `tests.checking.expect_matches`.
* Random exercises (generators): the checks test the distribution (presence rates, independence, values), and
  when a statistic is off they name the cause by testing alternative hypotheses on the same sample: which rate
  table the presence follows (1 - p, p of instance 0, a fair coin ...), which axis a random draw is shared
  along, which value distribution was drawn.
Every statistic that can fail a correct answer gets failure probability FAILURE_PROBABILITY / GEN_TESTS (a union
bound over the fewer than GEN_TESTS statistics a generator checker computes). The alternative hypotheses are
tested only after a statistic has failed, so they cannot fail a correct answer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from tests import part1_superposition_causes as causes
from tests import part1_superposition_cell_scales as cell_scales
from tests import part1_superposition_draws as draws
from tests import part1_superposition_probes as probes
from tests import part1_superposition_slips as slips
from tests import part1_superposition_support_gaps as support_gaps
from tests import part1_superposition_value_laws as value_laws
from tests.checking import CheckFailed, bernstein_tolerance, fail
from tests.part1_superposition_probes import DELTA, consistent, rate_tolerance

relu = torch.relu
Mutant = tuple[str, str, Tensor]

# A correct generator can draw a present value of exactly 0.0 (torch.rand has 2^-24 resolution), which then looks
# absent. Over the <= 10^6 draws of a check their number is Poisson with mean < 0.06, so P(more than 6) < 1e-12:
# structural checks ("both features of a pair present together") allow 6 such breaks.
ZERO_DRAW_ALLOWANCE = 6
# Two independent float32 draws are equal with probability 2^-24; a check compares < 10^6 pairs of present values,
# so the number of equal pairs is Poisson with mean < 0.06 and P(more than 6) < 1e-12.
EQUAL_DRAW_ALLOWANCE = 6


# --------------------------------------------------------------------------------------------
# Forward passes: ReLU(W_outᵀ act(W_in x) + b), part 1 (act = identity, W_out = W_in) and part 2
# --------------------------------------------------------------------------------------------
def down(x: Tensor, W: Tensor) -> Tensor:
    """[... inst feats], [inst d feats] -> [... inst d]."""
    return torch.einsum("...if,idf->...id", x, W)


def up(h: Tensor, W: Tensor) -> Tensor:
    """[... inst d], [inst d feats] -> [... inst feats]."""
    return torch.einsum("...id,idf->...if", h, W)


def identity(t: Tensor) -> Tensor:
    return t


def two_layer(
    x: Tensor,
    W_in: Tensor,
    W_out: Tensor,
    b: Tensor,
    act: Callable = identity,
    out: Callable = relu,
    bias_first: bool = True,
    mix_instances: bool = False,
) -> Tensor:
    """out(W_outᵀ act(W_in x) + b), each instance with its own weights; W_out in the read layout [inst d feats]."""
    h = act(down(x, W_in))
    if mix_instances:
        h = h.sum(-2, keepdim=True).expand_as(h)
    pre = up(h, W_out)
    return out(pre + b) if bias_first else out(pre) + b


def _first(t: Tensor) -> Tensor:
    return t[:1].expand_as(t)


def _unit_columns(W: Tensor) -> Tensor:
    return W / W.norm(dim=1, keepdim=True).clamp_min(1e-8)


def forward_mutants(x: Tensor, W_in: Tensor, W_out: Tensor, b: Tensor, hidden_relu: bool, formula: str) -> list[Mutant]:
    """What the usual mistakes in a toy model's forward pass return on these inputs.

    `hidden_relu` says whether the reference has a ReLU on the hidden layer (part 2) or not (part 1);
    `formula` is the reference written out for the hints.
    """
    act = relu if hidden_relu else identity
    model = lambda **kw: two_layer(**{"x": x, "W_in": W_in, "W_out": W_out, "b": b, "act": act, **kw})
    gelu, sigmoid, softplus, tanh = F.gelu, torch.sigmoid, F.softplus, torch.tanh
    other_act = "the nonlinearity is a ReLU (torch.relu / F.relu), not GELU, sigmoid, softplus or tanh"
    twice = " (2 · b_final: added again, or multiplied by d_hidden = 2, once per hidden unit)" * (W_in.shape[-2] == 2)
    # Forgetting to contract `feats` in the first product: h[..., d, f] = x_f W_in[d, f], so each output sees only
    # its own feature, scaled by Σ_d act(W_in[d, f] x_f) W_out[d, f].
    diagonal = (act(x.unsqueeze(-2) * W_in) * W_out).sum(-2)
    mistakes: list[Mutant] = [
        ("no_relu", f"the output ReLU is missing: {formula}", model(out=identity)),
        (
            "bias_after_relu",
            "b_final is added after the output ReLU: add it first, then apply the ReLU",
            model(bias_first=False),
        ),
        ("no_bias", f"b_final is missing: add it before the output ReLU, {formula}", model(b=torch.zeros_like(b))),
        ("bias_sign", "b_final is subtracted: add it (+ self.b_final)", model(b=-b)),
        (
            "instance_mixing",
            "instances must not interact: keep the `inst` axis on both sides of every einsum "
            "('... inst feats, inst d feats -> ... inst d'), never sum over it",
            model(mix_instances=True),
        ),
        (
            "first_instance",
            "every instance used instance 0's weights: index with the `inst` axis, not [0]",
            model(W_in=_first(W_in), W_out=_first(W_out)),
        ),
        (
            "first_instance",
            "every instance used instance 0's weights and bias: index with the `inst` axis, not [0]",
            model(W_in=_first(W_in), W_out=_first(W_out), b=_first(b)),
        ),
        (
            "first_instance_bias",
            "every instance used instance 0's b_final: add the whole b_final [inst feats]",
            model(b=_first(b)),
        ),
        (
            "diagonal_only",
            "each output depends only on its own input feature: the first product did not sum over `feats` "
            "(h = W x contracts the feature axis: '... inst feats, inst d feats -> ... inst d')",
            (relu(diagonal + b)),
        ),
        (
            "normalised_weights",
            "use W as it is: the forward pass does not normalise its columns",
            model(W_in=_unit_columns(W_in), W_out=_unit_columns(W_out)),
        ),
        ("wrong_activation", other_act, model(out=gelu)),
        ("wrong_activation", other_act, model(out=sigmoid)),
        ("wrong_activation", other_act, model(out=softplus)),
        ("wrong_activation", other_act, model(out=tanh)),
        ("wrong_activation", other_act, model(out=lambda t: F.leaky_relu(t, 0.01))),
        ("bias_twice", f"b_final is added twice{twice}: add it once, before the output ReLU", model(b=2 * b)),
        (
            "reshape_not_permute",
            "the input was reshaped (or viewed) to [inst, batch, feats] for a batched matmul: reshape keeps the "
            "memory order, so examples and instances get mixed up; move the axis with x.transpose(0, 1) (or "
            "permute / einops.rearrange), or use einsum with '...' patterns",
            probes.reshaped_batched(x, W_in, W_out, b, act),
        ),
        *[
            (
                "bias_on_input",
                f"b_final is also {how} the input before the first product ({expr}, like an SAE's pre-encoder "
                f"bias): this model reads the features as they are and adds b_final only to the output, {formula}",
                model(x=x + sign * b),
            )
            for sign, how, expr in ((-1, "subtracted from", "x - b_final"), (1, "added to", "x + b_final"))
        ],
        (
            "reshaped_weights",
            "W was reshaped (or viewed) to [inst feats d_hidden]: that scrambles it; transpose it, or name its axes "
            "in the einsum ('inst d_hidden feats')",
            model(
                W_in=W_in.reshape(W_in.shape[0], -1, W_in.shape[1]).transpose(-1, -2),
                W_out=W_out.reshape(W_out.shape[0], -1, W_out.shape[1]).transpose(-1, -2),
            ),
        ),
        (
            "mean_over_hidden",
            "a product with the weights averages over `d_hidden` (or `feats`): the matrix products sum over the "
            "contracted axis (einsum, not einops.reduce(..., 'mean'))",
            model(W_out=W_out / W_out.shape[1]),
        ),
    ]
    if hidden_relu:
        mistakes += [
            (
                "no_hidden_relu",
                "the hidden ReLU is missing (this is part 1's forward): h = ReLU(W x) before going back up",
                model(act=identity),
            ),
            (
                "relu_on_input",
                "the ReLU belongs on the hidden activations W x, not on the input features",
                model(x=relu(x), act=identity),
            ),
            ("wrong_activation", other_act, model(act=gelu)),
            ("wrong_activation", other_act, model(act=gelu, out=gelu)),
            ("wrong_activation", other_act, model(act=sigmoid)),
            *[("hidden_leaky", LEAKY, model(act=lambda t, s=s: F.leaky_relu(t, s))) for s in (0.01, 0.1, 0.2)],
            (
                "hidden_clamp_max",
                "the hidden ReLU keeps the positive values: clamp(min=0) (or torch.relu), not clamp(max=0)",
                model(act=lambda t: t.clamp(max=0)),
            ),
            (
                "relu_on_weights",
                "the ReLU goes on the hidden activations W x, not on the weights",
                model(W_in=relu(W_in), act=identity),
            ),
            (
                "relu_on_input_and_hidden",
                "only the hidden activations W x get a ReLU before the output, not also the input features",
                model(x=relu(x)),
            ),
        ]
    else:
        mistakes += [
            (
                "hidden_relu",
                "this model has no ReLU on the hidden layer (that is part 2's model): only on the output",
                model(act=relu),
            ),
            (
                "relu_on_input",
                "the ReLU belongs on the output, ReLU(WᵀWx + b), not on the input features",
                model(x=relu(x), out=identity),
            ),
        ]
    return mistakes


LEAKY = (
    "the hidden nonlinearity is a ReLU: negative hidden values become 0 (torch.relu), not a small slope (leaky_relu)"
)


# --------------------------------------------------------------------------------------------
# Losses: Σ_inst mean_{batch, feats} I (target - out)²
# --------------------------------------------------------------------------------------------
def weighted_loss(target: Tensor, out: Tensor, imp: Tensor, power: float = 2.0, imp_inside: bool = False) -> Tensor:
    d = (target - out).abs() ** power
    return (((imp * (target - out)) ** 2) if imp_inside else imp * d).mean(dim=(0, 2)).sum()


def loss_mutants(out: Tensor, batch: Tensor, imp: Tensor, target: Tensor) -> list[Mutant]:
    """What the usual mistakes in the importance-weighted loss return (scalars), for target = batch or |batch|."""
    err = imp * (target - out) ** 2
    return [
        (
            "no_importance",
            "weight each squared error by self.importance[inst, feat]",
            ((target - out) ** 2).mean(dim=(0, 2)).sum(),
        ),
        (
            "importance_squared",
            "multiply by the importance once, outside the square: I · (target - out)², not (I · (target - out))²",
            weighted_loss(target, out, imp, imp_inside=True),
        ),
        (
            "first_instance_importance",
            "every instance used instance 0's importances: use the whole self.importance [inst feats]",
            (imp[:1] * (target - out) ** 2).mean(dim=(0, 2)).sum(),
        ),
        (
            "importance_averaged",
            "every instance used the importances averaged over instances (importance.mean(0)): weight each "
            "instance's errors with its own row, the whole self.importance [inst feats]",
            (imp.mean(0) * (target - out) ** 2).mean(dim=(0, 2)).sum(),
        ),
        (
            "mean_over_instances",
            "sum over instances (each instance is its own model); average only over batch and features",
            err.mean(),
        ),
        (
            "sum_over_features",
            "average over features as well as the batch: mean over (batch, feats), not a sum over feats",
            err.sum(-1).mean(0).sum(),
        ),
        ("sum_over_batch", "average over the batch, don't sum over it", err.sum(0).mean(-1).sum()),
        ("sum_all", "average over batch and features (then sum over instances): this sums over everything", err.sum()),
        (
            "not_squared",
            "the error is squared: (target - out) ** 2, not its absolute value",
            weighted_loss(target, out, imp, power=1.0),
        ),
        (
            "root",
            "no square root: the loss is the mean squared error itself, not its root",
            err.mean(dim=(0, 2)).sqrt().sum(),
        ),
        (
            "root",
            "no square root: the loss is the mean squared error itself, not its root",
            err.mean(dim=(0, 2)).sum().sqrt(),
        ),
        (
            "weighted_mse",
            "F.mse_loss(I * out, I * target) puts the importance inside the square and averages over instances "
            "too: weight the squared error, I · (target - out)², and sum over instances",
            ((imp * (target - out)) ** 2).mean(),
        ),
        (
            "importance_rescaled",
            "use self.importance as it is: it is not normalised (divided by its sum or max) per instance",
            (imp / imp.sum(-1, keepdim=True) * (target - out) ** 2).mean(dim=(0, 2)).sum(),
        ),
        (
            "importance_averaged",
            "weight each feature's squared error by its own importance[inst, feat], not the instance's mean importance",
            (imp.mean(-1, keepdim=True) * (target - out) ** 2).mean(dim=(0, 2)).sum(),
        ),
        (
            "importance_on_target",
            "the importance weights the squared error, I · (target - out)², not the target inside it: "
            "(I · target - out)²",
            ((imp * target - out) ** 2).mean(dim=(0, 2)).sum(),
        ),
        (
            "squares_subtracted",
            "square the difference, (target - out)², not the difference of the squares, target² - out²",
            (imp * (target**2 - out**2)).mean(dim=(0, 2)).sum(),
        ),
        (
            "error_sign",
            "the error is target - out: (target + out)² adds them",
            (imp * (target + out) ** 2).mean((0, 2)).sum(),
        ),
        *reduction_mutants(err),
    ]


def reduction_mutants(err: Tensor) -> list[Mutant]:
    """Two or three reductions wrong at once (one wrong reduction has its own code in `loss_mutants`)."""
    wrong = {
        "batch": "summed over the batch (average it)",
        "feats": "summed over features (average them)",
        "inst": "averaged over instances (sum them)",
    }
    mutants = []
    for batch_sum in (False, True):
        for feats_sum in (False, True):
            for inst_mean in (False, True):
                off = [name for name, flag in zip(wrong, (batch_sum, feats_sum, inst_mean), strict=True) if flag]
                if len(off) < 2 or off == ["batch", "feats"]:  # one mistake (its own code), or sum_all
                    continue
                e = err.sum(0) if batch_sum else err.mean(0)
                e = e.sum(-1) if feats_sum else e.mean(-1)
                hint = "the reductions are off: " + "; ".join(f"the loss is {wrong[name]}" for name in off)
                mutants.append(("reductions", hint, e.mean() if inst_mean else e.sum()))
    return mutants


# --------------------------------------------------------------------------------------------
# Random generators: rates
# --------------------------------------------------------------------------------------------
RateCandidate = tuple[str, str, Tensor]


def common_rate_candidates(p: Tensor, unit: str = "feature", n: int = 20_000) -> list[RateCandidate]:
    """Rate tables [inst units] of the usual presence mistakes, for presence probabilities p [inst units] (n draws)."""
    return [
        (
            "presence_one_minus_p",
            "the rates are 1 - p (the batch cannot tell which): the comparison flipped (present when `rand < p`, not "
            "`rand > p`), or torch.where's branches swapped (0 where present, the value where absent: "
            "`torch.where(present, values, 0.0)`)",
            1 - p,
        ),
        (
            "presence_half_p",
            "the rates are p / 2: something halves the presence probability (a division by 2, an extra 50% coin "
            "AND-ed into the mask), or half of the present values are exactly 0 (a ReLU or clamp of a signed draw)",
            p / 2,
        ),
        (
            "presence_double_p",
            "the rates are 2p (capped at 1): the presence probability is doubled somewhere",
            (2 * p).clamp(max=1),
        ),
        (
            "presence_or",
            "the rates are 1 - (1 - p)²: two presence draws are OR-ed (use one presence draw per entry)",
            1 - (1 - p) ** 2,
        ),
        (
            "presence_p_one_minus_p",
            "the rates are p(1 - p): an entry is present when one draw is below p and another is not (use one "
            "presence draw per entry)",
            p * (1 - p),
        ),
        (
            "always_present",
            "every entry is present: no presence mask is drawn, or it is drawn against a probability that is 1 here "
            "(a field other than p?): present where `rand < p`, and zero the absent entries",
            torch.ones_like(p),
        ),
        (
            "presence_ignores_p",
            "every rate is 50%: presence does not follow p (`rand < p`); possible causes: a fair coin (rand < 0.5), a "
            "draw against a probability that is 1/2 here, or presence decided by a rank or count, not each p",
            torch.full_like(p, 0.5),
        ),
        (
            "presence_p_squared",
            "the rates are p²: two independent `rand < p` draws are both required (one presence draw per entry)",
            p**2,
        ),
        (
            "first_instance_probability",
            "every instance uses instance 0's probabilities: keep the `inst` axis of p",
            _first(p),
        ),
        (
            f"first_{unit}_probability",
            f"every {unit} uses {unit} 0's probability: keep p's `{unit}` axis",
            p[:, :1].expand_as(p),
        ),
        (
            "mean_probability",
            draws.mean_probability_hint(p, n, unit),
            torch.full_like(p, float(p.mean())),
        ),
        *[
            (code, hint, table)
            for code, hint, table in (
                (
                    "instance_mean_probability",
                    "every instance uses the probabilities averaged over instances (p.mean(0)): keep p's `inst` axis",
                    p.mean(0, keepdim=True).expand_as(p),
                ),
                (
                    f"{unit}_mean_probability",
                    f"every {unit} of an instance uses the instance's average probability (p.mean(-1)): keep p's "
                    f"`{unit}` axis",
                    p.mean(1, keepdim=True).expand_as(p),
                ),
            )
            # Listed only where a sample of n draws can tell it from the overall mean (else check_rates' fallback).
            if bool(((table - p.mean()).abs() > 2 * rate_tolerance(n, table)).any())
        ],
    ]


def check_rates(
    observed: Tensor,
    expected: Tensor,
    n: int,
    what: str,
    candidates: Sequence[RateCandidate],
    unit: str = "feature",
    default_hint: str | None = None,
) -> None:
    """Every frequency of `observed` [inst units] (n draws each) is within tolerance of `expected`; else name why."""
    observed, expected = observed.double().cpu(), expected.double().cpu()
    excess = (observed - expected).abs() - rate_tolerance(n, expected)
    if (excess <= 0).all():
        return
    i, j = divmod(int(excess.argmax()), observed.shape[1])
    tol = float(rate_tolerance(n, expected[i, j]))
    message = (
        f"{what}: inst {i}, {unit} {j} is present in {observed[i, j]:.2%} of examples, "
        f"expected {expected[i, j]:.2%} ± {tol:.2%}"
    )
    for code, hint, table in candidates:
        if consistent(observed, table.double().cpu(), n):
            fail(message, hint, code=code)
    for dim, name in ((0, "inst"), (1, unit)):
        mapping = slips.permutation(observed, expected, n, dim)
        if mapping is not None:
            k = next(k for k, m in enumerate(mapping) if m != k)
            fail(
                message,
                f"{name} {k} is present at the rates of {name} {mapping[k]}: the probabilities are indexed in another "
                f"order than the {name}s they belong to (keep p's axes in the order [inst, {unit}])",
                code=f"{'instance' if name == 'inst' else unit}_order",
            )
    draws.averaged_rates_failure(observed, expected, n, message, unit)
    draws.clamped_rates_failure(observed, expected, n, message)
    found = causes.rate_causes(observed, expected, n, unit, default_hint)
    code, hint = found or ("presence_probability", default_hint)
    fail(message, hint or f"each {unit} of each instance is present with its own probability p[inst, {unit}]", code)


# --------------------------------------------------------------------------------------------
# Random generators: independence
# --------------------------------------------------------------------------------------------
def check_not_shared_over_batch(present: Tensor, what: str, p: Tensor | None = None, **unit: str) -> None:
    """Every (inst, unit) cell changes across the batch (a mask drawn once for the whole batch doesn't); with the rates
    p, some cells always and others never present also name a draw shared over the batch (`unit`: its words)."""
    if p is not None:
        draws.constant_cells_failure(present, p, what, **unit)
    constant = (present.all(0) | (~present).all(0)).all()
    if present.shape[0] > 1 and constant and not present.all():  # all present is a rate mistake, named by the rates
        fail(
            f"{what}: every example in the batch has the same entries present",
            "draw presence separately for every batch element (a random tensor of shape [batch, inst, ...])",
            code="shared_over_batch",
        )


def _joint_test(observed: Tensor, expected: Tensor, n: int) -> tuple[bool, int, float, float, float]:
    tol = rate_tolerance(n, expected)
    excess = (observed - expected).abs() - tol
    k = int(excess.argmax())
    return (
        bool((excess > 0).any()),
        k,
        float(observed.flatten()[k]),
        float(expected.flatten()[k]),
        float(tol.flatten()[k]),
    )


def check_pairwise_independence(
    present: Tensor, p: Tensor, what: str, unit: str, hint_units: str, hint_instances: str, codes: tuple[str, str]
) -> None:
    """P(both present) = p_a p_b for two units of one instance, and for one unit in two instances.

    A draw shared along the unit axis (or the instance axis) makes the joint rate min(p_a, p_b) instead.
    """
    n = present.shape[0]
    pf, p = present.double(), p.double().cpu()
    for code, hint, joint, product, label in (
        (
            codes[0],
            hint_units,
            torch.einsum("bia,bic->iac", pf, pf) / n,
            p[:, :, None] * p[:, None, :],
            lambda i, a, c: f"inst {i}, {unit}s {a} and {c}",
        ),
        (
            codes[1],
            hint_instances,
            torch.einsum("bia,bja->aij", pf, pf) / n,
            p.T[:, :, None] * p.T[:, None, :],
            lambda a, i, j: f"{unit} {a}, instances {i} and {j}",
        ),
    ):
        off_diagonal = ~torch.eye(joint.shape[-1], dtype=torch.bool).expand_as(joint)
        if joint.shape[-1] < 2:
            continue
        bad, flat, obs, exp, tol = _joint_test(joint[off_diagonal], product[off_diagonal], n)
        if bad:
            idx = off_diagonal.nonzero()[flat].tolist()
            fail(
                f"{what}: {label(*idx)} are both present in {obs:.2%} of examples; "
                f"independent draws give {exp:.2%} ± {tol:.2%}",
                hint,
                code=code,
            )


def check_batch_independence(present: Tensor, p: Tensor, what: str, unit: str) -> None:
    """Consecutive examples, and examples half a batch apart, are independent (unlike a mask tiled along the batch)."""
    n = present.shape[0]
    pf, p = present.double(), p.double().cpu()
    for lag, label in ((1, "consecutive examples"), (n // 2, "examples half a batch apart")):
        joint = (pf[:-lag] * pf[lag:]).mean(0)
        bad, flat, obs, exp, tol = _joint_test(joint, p**2, n - lag)
        if bad:
            i, j = divmod(flat, joint.shape[1])
            fail(
                f"{what}: inst {i}, {unit} {j} is present in both of two {label} {obs:.2%} of the time; "
                f"independent examples give {exp:.2%} ± {tol:.2%}",
                "every example needs its own draws: don't repeat or tile a smaller random tensor along the batch",
                code="repeated_over_batch",
            )


# --------------------------------------------------------------------------------------------
# Random generators: values
# --------------------------------------------------------------------------------------------
def check_value_support(batch: Tensor, what: str, low: float, high: float, p: Tensor | None = None) -> Tensor:
    """Present values lie in [low, high] and are not constant; returns the presence mask (value != 0)."""
    draws.support_failures(batch, what, low, p)
    present = batch != 0
    values = batch[present].double()
    law = f"U[{low:g}, {high:g}]"
    if values.numel() == 0:
        fail(
            f"{what}: every entry is 0",
            "draw a presence mask (`rand < p`) and values for the present entries",
            code="all_zero",
        )
    lo, hi = float(values.min()), float(values.max())
    if lo < low or hi > high:
        mean, var = float(values.mean()), float(values.var()) if values.numel() > 1 else 0.0
        if (lo < -1 or hi > 1) and abs(mean) < 0.1 and 0.7 < var < 1.4:
            code, hint = "values_normal", f"values look normal (torch.randn, mean 0, variance 1): draw them from {law}"
        elif low == 0 and lo >= -1 and hi <= 1 and (values < 0).double().mean() > 0.3:
            code, hint = "values_signed", value_laws.signed_values_hint(values, law)
        elif (described := probes.describe_value_law(batch, values, low, high)) is not None:
            code, hint = described
        elif lo >= low and hi <= 2.05 * high - low:
            code, hint = "values_scaled", f"values reach {hi:.3g}, beyond {law}: a factor or an offset on torch.rand"
        else:
            code, hint = "value_range", f"present features take values from {law}, absent ones are exactly 0"
        fail(f"{what} has values outside [{low:g}, {high:g}] (min {lo:.3g}, max {hi:.3g})", hint, code=code)
    if low < 0 and (values > 0).all():
        fail(
            f"{what}: no present value is negative",
            f"values should be {law}: e.g. a U[0, 1] draw (use 2 * torch.rand(...) - 1) or an abs/ReLU/clamp after it",
            code="values_unsigned",
        )
    if values.numel() > 1 and float(values.abs().std()) < 1e-3:
        hint = f"magnitudes look constant: draw each present value from {law}"
        if abs(float(values.abs().max()) - 1) < 1e-6:
            hint = (
                f"every present value is 1{' or -1' if low < 0 else ''} (the batch takes only a few distinct values): "
                "values rounded (.round()) or cast to int or bool, or a mask or sign used as the value with no "
                f"magnitude drawn; draw each present value from {law}"
            )
        fail(f"{what}: every present value has magnitude {float(values.abs()[0]):.3g}", hint, code="constant_magnitude")
    value_laws.grid_values_failure(values, what, law)
    # A correct draw puts Poisson(< 0.06) values exactly on a bound (as for zeros). A clamp of a wider draw piles
    # values on the upper bound (and, when the lower one is not 0, on both: clamped 0s would look absent).
    atoms = [int((values == v).sum()) for v in (low, high)]
    if all(k > max(ZERO_DRAW_ALLOWANCE, 0.01 * values.numel()) for k in atoms[low == 0 :]):
        fail(
            f"{what}: {atoms[1] / values.numel():.0%} of the present values are exactly {high:g}"
            + (f" and {atoms[0] / values.numel():.0%} exactly {low:g}" if low != 0 else ""),
            f"values are clamped into [{low:g}, {high:g}] from a wider draw (randn?): that piles them on the bounds"
            + (", and the values clamped to exactly 0 look absent (lowering the presence rates)" if low == 0 else "")
            + f"; draw them from {law} directly",
            code="values_clamped",
        )
    return present


def _uniform_tolerances(n: Tensor, low: float, high: float) -> tuple[Tensor, float, float]:
    width = high - low
    return (
        torch.tensor(
            [bernstein_tolerance(max(int(k), 1), width**2 / 12, width, DELTA) for k in n.flatten().tolist()]
        ).reshape(n.shape),
        width**2 / 12,
        width,
    )


def check_values_per_cell(
    batch: Tensor, present: Tensor, what: str, low: float, high: float, unit: str, p: Tensor | None = None
) -> None:
    """The mean present value of every (inst, unit) cell is (low + high) / 2: values don't depend on p or presence.

    `p` [inst units], the presence probabilities, names values whose range's width follows p (a reused draw).
    """
    causes.per_example_values_failure(batch, present, what, low, high)
    causes.constant_values_failure(batch, present, what, low, high, p)
    counts = present.sum(0).double()
    for a, c in (counts >= 10).nonzero().tolist():
        cell = batch[:, a, c][present[:, a, c]]
        if bool((cell == cell[0]).all()):
            fail(
                f"{what}: inst {a}, {unit} {c} has the value {float(cell[0]):.3g} in every example where it is present",
                "every example needs its own values: draw the value tensor with the batch axis, [batch, inst, ...]",
                code="values_shared_over_batch",
            )
    sums = torch.where(present, batch, 0.0).double().sum(0)
    means = sums / counts.clamp_min(1)
    tol, _, width = _uniform_tolerances(counts, low, high)
    excess = torch.where(counts > 0, (means - (low + high) / 2).abs() - tol, torch.full_like(means, -1.0))
    if (excess <= 0).all():
        return
    i, j = divmod(int(excess.argmax()), means.shape[1])
    message = (
        f"{what}: present values of inst {i}, {unit} {j} have mean {means[i, j]:.3f}, "
        f"expected {(low + high) / 2:.3f} ± {tol[i, j]:.3f}"
    )
    # Diagnosis only: reusing the presence draw (or scaling by p) confines a cell's values to a width p * (high - low).
    enough = (counts >= 200) & (excess > 0)  # the failing cells with enough draws to show their span
    if p is not None and enough.any():
        spans = torch.zeros_like(means)
        for a, c in enough.nonzero().tolist():
            cell = batch[:, a, c][present[:, a, c]].double()
            spans[a, c] = cell.max() - cell.min()
        follows_p = ((spans - p.double().cpu() * width).abs() < 0.05 * width)[enough].all()
        cell_values = batch[:, i, j][present[:, i, j]]
        if follows_p and float(spans[enough].min()) < 0.9 * width:
            fail(
                message + f"; they span only [{cell_values.min():.3f}, {cell_values.max():.3f}]",
                "each entry's values are confined to an interval whose width is its probability p: they look like "
                "the same random numbers that decided presence (reused), or values scaled by p; draw the values "
                "with a separate rand call, and don't scale them",
                code="values_reuse_mask",
            )
    pooled = float(sums.sum() / counts.sum())
    if bool(((means - pooled).abs() <= tol)[counts > 0].all()):
        return  # every cell has the same (wrong) law: the pooled test below names it
    value_laws.per_cell_law_failure(batch, present, p, message, low, high)
    causes.pair_value_correlation_failure(batch, present, message)
    cell_scales.cell_law_failure(batch, present, means, counts, message, (low, high), unit)


def check_value_law(batch: Tensor, present: Tensor, what: str, low: float, high: float) -> None:
    """Pooled present values: mean, mean square and the share in each quarter of [low, high] match U[low, high]."""
    values = batch[present].double()
    n = values.numel()
    law, width = f"U[{low:g}, {high:g}]", high - low
    m2 = (high**3 - low**3) / (3 * width)
    m4 = (high**5 - low**5) / (5 * width)
    tol_mean = bernstein_tolerance(n, width**2 / 12, width, DELTA)
    tol_sq = bernstein_tolerance(n, m4 - m2 * m2, max(low * low, high * high), DELTA)
    mean, mean_sq = float(values.mean()), float((values**2).mean())
    quarters = torch.stack(
        [((values >= low + k * width / 4) & (values < low + (k + 1) * width / 4)).double().mean() for k in range(4)]
    )
    tol_q = float(rate_tolerance(n, 0.25))
    bad_moments = abs(mean - (low + high) / 2) > tol_mean or abs(mean_sq - m2) > tol_sq
    message = (
        f"{what}: present values have mean {mean:.3f}, mean square {mean_sq:.3f} and quarters "
        f"{', '.join(f'{q:.0%}' for q in quarters.tolist())}; {law} gives {(low + high) / 2:.3f} ± {tol_mean:.3f}, "
        f"{m2:.3f} ± {tol_sq:.3f} and 25% each"
    )
    fits = not bad_moments and float((quarters - 0.25).abs().max()) <= tol_q
    value_laws.value_atom_failure(values, message, low, high)  # one value repeated far beyond chance: an atom
    if fits:
        return support_gaps.support_gap_failure(values, message, low, high)
    draw, lo, hi = ("2 * torch.rand(...) - 1" if low < 0 else "torch.rand(...)"), values.min(), values.max()
    if hi - lo < 0.6 * width:
        fail(
            message + f" (values span only [{lo:.3f}, {hi:.3f}])",
            f"values cover only [{lo:.2g}, {hi:.2g}], part of the range (rand - 0.5, rand / 2 or rand - 1 cover "
            f"half of it): use {draw}",
            code="values_half_width",
        )
    fail(
        message,
        f"{probes.value_shape(values, low, high, quarters)}draw present values from {law} ({draw})",
        code="value_distribution",
    )


def check_values_not_shared(batch: Tensor, present: Tensor, what: str, unit: str) -> None:
    """Two present entries of one example (two units of one instance, one unit in two instances) never share a value."""
    _, n_inst, k = batch.shape
    within = (
        (batch.unsqueeze(-1) == batch.unsqueeze(-2)) & present.unsqueeze(-1) & present.unsqueeze(-2)
    )  # [n inst k k]
    across = (batch.unsqueeze(2) == batch.unsqueeze(1)) & present.unsqueeze(2) & present.unsqueeze(1)  # [n inst inst k]
    for same, axis, label in (
        (int((within & ~torch.eye(k, dtype=torch.bool)).sum()) // 2, unit, f"{unit}s of one instance"),
        (int((across & ~torch.eye(n_inst, dtype=torch.bool)[:, :, None]).sum()) // 2, "instance", "instances"),
    ):
        if same > EQUAL_DRAW_ALLOWANCE and not draws.grid_ties(batch, present, same, axis == unit):
            fail(
                f"{what}: {same} times two present {label} have exactly the same value in one example",
                f"draw the values with the full shape [batch, inst, {unit}s]: a value tensor broadcast along the "
                f"{axis} axis gives them equal values",
                code=f"values_shared_over_{axis}s",
            )


def check_input_unchanged(before: Tensor, after: Tensor, name: str) -> None:
    if not torch.equal(before, after.detach().to(before.device)):
        fail(
            f"your code changed its input `{name}` in place",
            f"don't modify `{name}` (no `{name} *= ...`, `.mul_()`, `.clamp_()`): compute new tensors instead",
            code="modified_input",
        )


# --------------------------------------------------------------------------------------------
# Whole checks shared by parts 1 and 2
# --------------------------------------------------------------------------------------------
FEATURE_HINT = (
    "draw presence independently for every feature: the random tensor needs the full shape [batch, inst, feats]"
)
INSTANCE_HINT = (
    "draw presence independently for every instance: the random tensor needs the full shape [batch, inst, feats]"
)


def check_independent_features(
    batch: Tensor, p: Tensor, what: str, low: float = 0.0, high: float = 1.0, extra: Sequence[RateCandidate] = ()
) -> None:
    """Everything a batch of independent features promises, for a batch [n inst feats] and probabilities p [inst feats]:
    each entry present with its own probability, independently along every axis, with U[low, high] values that
    don't depend on presence."""
    n = batch.shape[0]
    present = check_value_support(batch, what, low, high, p)
    check_not_shared_over_batch(present, what, p)
    draws.batch_drift_failure(present, p, what)
    check_rates(
        present.double().mean(0), p, n, f"{what}: presence", [*extra, *common_rate_candidates(p.double().cpu(), n=n)]
    )
    check_pairwise_independence(
        present, p, what, "feature", FEATURE_HINT, INSTANCE_HINT, ("shared_over_features", "shared_over_instances")
    )
    check_batch_independence(present, p, what, "feature")
    check_values_per_cell(batch, present, what, low, high, "feature", p)
    try:
        check_value_law(batch, present, what, low, high)
    except CheckFailed:
        draws.cell_span_failure(batch, present, p, what, low, high)
        raise
    check_values_not_shared(batch, present, what, "feature")
