"""Checkers for part 4 (superposition and deep double descent).

Call them from the notebook as `tests.part4_double_descent.test_<exercise>(<object>)`. The data-set generator is
tested on the statistics that define it (never on particular draws), and when one is off, further statistics name
the cause: the normalisation applied, the rate the presence follows, the axis the randomness is shared along, the
distribution of the values. The schedule and the dimensionality are compared with the formula, and a wrong answer
is matched against the usual mistakes (tests/part4_double_descent_mistakes.py) so the hint can name the mistake.
"""

from __future__ import annotations

import math
import numbers
import re
import types
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

import solutions.part4_double_descent as ref
import tests.part4_double_descent_mistakes as mistakes
import tests.part4_double_descent_probes as probes
import tests.part4_double_descent_rates as rates
import tests.part4_double_descent_slips as slips
import tests.part4_double_descent_value_laws as value_laws
from solutions.part1_superposition import ToyModelConfig
from solutions.part4_double_descent import DoubleDescentModel as RefDoubleDescentModel
from tests.checking import checker, expect_close, expect_matches, expect_tensor, fail, returned
from tests.mutants import call
from tests.part3_feature_geometry import expect_output, expect_unmodified, unexplained
from tests.part3_feature_geometry_dpf_readbacks import upcast_failure
from tests.part4_double_descent_calls import call_learner as _call
from tests.part4_double_descent_calls import size_one_axis_failure, size_one_batch_failure
from tests.part4_double_descent_cosine_slips import cosine_slip
from tests.part4_double_descent_dataset_shape import dataset_shape_failure
from tests.part4_double_descent_dimensionality import small_vector_failure
from tests.part4_double_descent_draws import fixed_count_failure, low_precision_failure
from tests.part4_double_descent_fresh_draws import repeated_draw_failure
from tests.part4_double_descent_model_tensors import (
    model_tensor_scaled_failure,
    other_model_tensor_failure,
    parameter_source_failure,
)
from tests.part4_double_descent_norm_powers import norm_power_failure
from tests.part4_double_descent_readbacks import (
    absent_filled_failure,
    feature_weight_failure,
    train_data_transform_failure,
)
from tests.part4_double_descent_repeated_masks import repeated_mask_failure
from tests.part4_double_descent_schedule_readbacks import schedule_readback_failure
from tests.part4_double_descent_shared_values import shared_values_failure
from tests.part4_double_descent_zero_vector import zero_vector_failure
from tests.reshape_scrambles import regrouped_candidates
from utils.schedules import warmup_cosine_lr as shared_warmup_cosine_lr

# --------------------------------------------------------------------------------------------
# generate_dataset
# --------------------------------------------------------------------------------------------
# Sizes: 3 instances x 24 features x 6000 examples with p = 0.1: about 8% of the examples have no feature
# present, so the empty-example rule is exercised over a thousand times; p, 1 - p, p/2, 2p and p² are far
# apart, so the presence rate names its mistake.
GEN_EXAMPLES, GEN_INST, GEN_FEATS, GEN_P = 6_000, 3, 24, 0.1
# A present feature whose U[0, 1] draw is exactly 0.0 looks absent (torch.rand has 2^-24 resolution). Over
# the 432k draws here about 43k are present, so the expected number of such zeros is 0.003; one of them moves
# a frequency by 1/6000, far inside the tolerances below. Every statistical test gets failure probability
# FAILURE_PROBABILITY / GEN_TESTS from Bernstein's inequality (a union bound over fewer than GEN_TESTS tests).
GEN_SHAPE = (GEN_EXAMPLES, GEN_INST, GEN_FEATS)
GEN_DIMS = "examples inst feats"


def _check_values(x: Tensor, present: Tensor) -> None:
    """Present values: U[0, 1] draws of their own (before normalising), independent across instances and examples."""
    sample = mistakes.ratio_sample(x)
    if sample.numel() < 1000:
        fail(
            f"only {sample.numel()} present values in examples with two or more features",
            "check the presence mask",
            code="presence_probability",
        )
    if (sample > 1 - 1e-6).double().mean() > 0.5:
        fail(
            "within an example every present feature has the same value",
            "either a constant (e.g. the mask itself, as a float) or one value per example broadcast over the "
            "features: draw one U[0, 1] value per (example, instance, feature) with torch.rand(shape)",
            code="constant_values",
        )
    shared_values_failure(x)
    feature_weight_failure(x)
    n = sample.numel()
    tol_mean = mistakes.tolerance(n, 1 / 12)
    tol_sq = mistakes.tolerance(n, 4 / 45)  # x² for x ~ U[0, 1]: variance 1/5 - 1/9
    mean, mean_sq = sample.mean().item(), (sample**2).mean().item()
    if abs(mean - 0.5) <= tol_mean and abs(mean_sq - 1 / 3) <= tol_sq:
        return
    code, hint = (
        "value_distribution",
        (
            "draw each present feature's value from U[0, 1] with torch.rand (a separate draw from the presence "
            "mask), then normalise"
        ),
    )
    code, hint = value_laws.matching_law(sample, tol_mean, GEN_SHAPE, GEN_P) or (code, hint)
    fail(
        f"the present values of an example, relative to its largest one, have mean {mean:.3f} and mean "
        f"square {mean_sq:.3f}; U[0, 1] values give 0.500 ± {tol_mean:.3f} and 0.333 ± {tol_sq:.3f}",
        hint,
        code=code,
    )


@checker("generate_dataset", kind="function")
def test_generate_dataset(generate_dataset: Callable, device: torch.device) -> str:
    try:
        x = _call(generate_dataset, "generate_dataset", GEN_EXAMPLES, GEN_INST, GEN_FEATS, GEN_P, device=device)
    except RuntimeError as err:
        _keepdim_failure(err)
        raise
    dataset_shape_failure(x, GEN_SHAPE, GEN_P)
    what = "generate_dataset(...)"
    x = expect_tensor(x, what, shape=GEN_SHAPE, dims=GEN_DIMS, dtype=torch.float32, device=device, finite=False)
    x = x.detach().cpu().double()
    if not torch.isfinite(x).all():
        bad_rows = (~torch.isfinite(x)).any(-1)
        if ((~torch.isfinite(x)).all(-1) == bad_rows).all():
            fail(
                f"{what} contains {int(bad_rows.sum())} examples that are entirely NaN",
                "examples with no feature present have norm 0, and 0 / 0 is NaN: divide by norm.clamp_min(1e-12) "
                "so they stay all zeros",
                code="empty_examples",
            )
        fail(
            f"{what} contains {int((~torch.isfinite(x)).sum())} NaN or infinite values",
            "present features are U[0, 1] and every example is divided by its L2 norm over the features, "
            "clamped away from 0 (norm.clamp_min(1e-12)): nothing in it should overflow or divide by 0",
            code="not_finite",
        )
    if (x < 0).any():
        _negative_values(x)

    # 1. absent features are exactly 0: nothing may be added to every entry, and an empty example stays empty
    tiny = ((x > 0) & (x < 1e-4)).double().mean().item()
    if tiny > 0.5:
        fail(
            f"{tiny:.0%} of the entries are tiny but not 0",
            "a small constant was added to every entry (x + eps?): absent features must be exactly 0; put the "
            "epsilon on the norm instead, x / norm.clamp_min(1e-12)",
            code="epsilon_added",
        )
    full = (x > 0).all(-1)
    if full.any():  # all 24 features present: probability 0.1^24 per example
        rows = x[full]
        if torch.allclose(rows, rows[:, :1].expand_as(rows), rtol=1e-3):
            fail(
                f"{int(full.sum())} examples have every feature equal to {rows[0, 0].item():.4g}, expected empty "
                "examples to stay all zeros",
                slips.filled_rows_hint(rows[0, 0].item(), x.shape[-1]),
                code="empty_filled",
            )

    # 2. every non-empty example has unit L2 norm over the features
    norms = x.norm(dim=-1)
    nonzero = norms > 0
    # `x / (norm + 1e-8)` is a correct answer too: it leaves an example whose only present value u is below 1e-4 with
    # norm 1 - 1e-8 / u, outside NORM_TOL. About 0.2 * 18000 examples have one present value, so some 0.4 such
    # examples are expected (Poisson: more than 17, 0.1% of the 16,500 non-empty examples, has probability < 1e-20).
    # Up to 0.1% of the examples may therefore have a norm in (0.5, 1); every mistake below moves far more.
    off = nonzero & ((norms - 1).abs() > mistakes.NORM_TOL)
    benign = off & (norms > 0.5) & (norms < 1)
    if bool((off == benign).all()) and int(benign.sum()) <= 0.001 * int(nonzero.sum()):
        off = torch.zeros_like(off)
    if off.any():
        low_precision_failure(x, what)
        code, hint = mistakes.norm_diagnosis(x, GEN_P)
        norm_power_failure(x, what, code, hint)
        bad = ((norms - 1).abs() * nonzero).argmax()
        e, k = divmod(int(bad), GEN_INST)
        fail(
            f"example {e} of instance {k} has L2 norm {norms[e, k].item():.4g} over the features, expected 1",
            hint,
            code,
        )

    # 3. presence: frequency per (inst, feature); independence across instances and across features
    present = x > 0
    fixed_count_failure(present, what)
    repeated_mask_failure(x, present, what)  # before the rates: a reused draw also makes them noisier
    freq = present.double().mean(0)
    tol = mistakes.tolerance(GEN_EXAMPLES, GEN_P * (1 - GEN_P))
    excess = (freq - GEN_P).abs() - tol
    if (excess > 0).any():
        k, f = divmod(int(excess.argmax()), GEN_FEATS)
        code, hint = mistakes.presence_diagnosis(freq, GEN_EXAMPLES, GEN_P)
        fail(
            f"feature {f} of instance {k} is present in {freq[k, f].item():.2%} of the examples, expected "
            f"{GEN_P:.2%} ± {tol:.2%}",
            hint,
            code=code,
        )
    # P(feature present in instances i and j of the same example) = p² for independent instances; pooled over
    # examples and features these are GEN_EXAMPLES * GEN_FEATS independent Bernoulli(p²) draws.
    p2 = GEN_P**2
    tol_pair = mistakes.tolerance(GEN_EXAMPLES * GEN_FEATS, p2 * (1 - p2))
    for i in range(GEN_INST):
        for j in range(i + 1, GEN_INST):
            both = (present[:, i] & present[:, j]).double().mean().item()
            if abs(both - p2) > tol_pair:
                fail(
                    f"instances {i} and {j} share a present feature in {both:.2%} of (example, feature) slots, "
                    f"independent draws give {p2:.2%} ± {tol_pair:.2%}",
                    "every instance needs its own presence draws: draw with shape [n_examples, n_inst, n_features] "
                    "instead of repeating one draw over instances",
                    code="same_across_instances",
                )
    # P(two given features both present in an example) = p² for independent features: the mean of
    # k(k-1) / (F(F-1)) over the examples, a [0, 1] variable with variance at most its mean p².
    co, n_rows = mistakes.cooccurrence(present)
    tol_co = mistakes.tolerance(n_rows, p2)
    if abs(co - p2) > tol_co:
        fail(
            f"two given features are present together in {co:.2%} of the examples, independent draws give "
            f"{p2:.2%} ± {tol_co:.2%}",
            "features are present together (or not at all) far more often than chance: one presence draw per "
            "example broadcast over features? Draw the mask with shape [n_examples, n_inst, n_features]"
            if co > p2
            else "features avoid each other: draw every feature's presence independently",
            code="same_across_features",
        )
    # Empty examples: probability (1 - p)^F each, over GEN_EXAMPLES * GEN_INST independent rows.
    q = (1 - GEN_P) ** GEN_FEATS
    empty = (~present).all(-1).double().mean().item()
    tol_empty = mistakes.tolerance(GEN_EXAMPLES * GEN_INST, q * (1 - q))
    if abs(empty - q) > tol_empty:
        fail(
            f"{empty:.2%} of the examples have no feature present, independent draws give {q:.2%} ± {tol_empty:.2%}",
            "an example with no feature present is allowed (and must stay all zeros): don't redraw it or force a "
            "feature on"
            if empty < q
            else "too many empty examples: draw every feature's presence independently with probability p",
            code="no_empty_examples" if empty < q else "empty_rate",
        )

    # 4. values
    _check_values(x, present)
    # 5. every call draws new data (a generator reseeded inside the function gives the same data each time)
    small = [_call(generate_dataset, "generate_dataset", 50, GEN_INST, GEN_FEATS, GEN_P, device=device) for _ in "ab"]
    repeated_draw_failure(small)
    rates.second_rate_failure(lambda *a: _call(generate_dataset, "generate_dataset", *a, device=device))
    one = _call(generate_dataset, "generate_dataset", 37, 1, 5, 0.3, device=device)
    size_one_axis_failure(one, (37, 1, 5), ("examples", "inst", "feats"), "generate_dataset(37, 1, 5, 0.3)")
    expect_tensor(one, "generate_dataset(37, 1, 5, 0.3)", shape=(37, 1, 5), dims=GEN_DIMS, device=device)
    return "sparse, unit-norm examples, independent across examples, instances and features"


BROADCAST = re.compile(r"size of tensor a \((\d+)\) must match the size of tensor b \((\d+)\)")


def _keepdim_failure(err: RuntimeError) -> None:
    """A norm or sum over the features without keepdim=True leaves [examples, inst]: dividing [examples, inst, feats]
    by it lines inst up against feats, and broadcasting fails with exactly these two sizes."""
    match = BROADCAST.search(str(err))
    if match and {int(match.group(1)), int(match.group(2))} == {GEN_FEATS, GEN_INST}:
        fail(
            f"generate_dataset raised RuntimeError: {err}",
            f"a size {GEN_FEATS} (features) was broadcast against a size {GEN_INST} (instances): a reduction over the "
            "features without keepdim=True (x.norm(dim=-1) is [examples, inst]) divides the wrong axes; use "
            "x.norm(dim=-1, keepdim=True) (or F.normalize(x, dim=-1))",
            code="no_keepdim",
        )


def _negative_values(x: Tensor) -> None:
    """Name the symmetric distribution negative values come from."""
    message = f"the data set has negative values (min {x.min().item():.3g})"
    mean, sd = x.mean(-1), x.std(-1)
    if bool((mean.abs() < 1e-4).all()):
        unit = bool(((sd - 1).abs() < 1e-3)[sd > 1e-6].all())
        fail(
            message,
            f"every example has mean 0{' and standard deviation 1' if unit else ''} over its features: "
            f"{'standardised ((x - mean) / std)' if unit else 'a mean subtracted'} where the exercise normalises to "
            "unit L2 norm, x / x.norm(dim=-1, keepdim=True) (absent features stay exactly 0)",
            code="standardised",
        )
    sample = mistakes.ratio_sample(x.abs())
    tol = mistakes.tolerance(max(sample.numel(), 1), 1 / 12)
    if sample.numel() >= 1000 and abs(sample.mean().item() - 0.5) <= tol:
        fail(
            message,
            "the values look like U[-1, 1] (2 * rand - 1?): present features take values from U[0, 1] (torch.rand)",
            code="signed_uniform",
        )
    normal = mistakes.value_candidates(GEN_SHAPE, GEN_P)[0][2]
    if sample.numel() >= 1000 and abs(sample.mean().item() - normal.mean().item()) <= 2 * tol:
        fail(
            message,
            "the values look like N(0, 1) draws (randn): use torch.rand, uniform on [0, 1]",
            code="signed_normal",
        )
    fail(
        message,
        "present features take values from U[0, 1] before normalising, absent ones are exactly 0",
        "value_range",
    )


# --------------------------------------------------------------------------------------------
# warmup_cosine_lr
# --------------------------------------------------------------------------------------------
def _as_float(value: Any, what: str) -> float:
    value = returned(value, what)
    if isinstance(value, Tensor):
        if value.numel() != 1 or value.device.type == "meta":
            fail(
                f"{what} returned a tensor of shape {tuple(value.shape)}, expected a number",
                "return a float (math.cos works on Python numbers)",
                code="not_number",
            )
        # The contract is a float: optimize() sets the optimiser's lr to lr * factor, and AdamW on a GPU (foreach,
        # its default there) raises "lr as a Tensor is not supported" for a tensor learning rate.
        fail(
            f"{what} returned a tensor ({value.item():.4g}), expected a Python float",
            "return a float: use math.cos / math.pi on Python numbers (or .item()). The training loop sets the "
            "optimiser's learning rate to lr * factor, and AdamW on a GPU rejects a tensor learning rate",
            code="returned_tensor",
        )
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        fail(f"{what} returned {type(value).__name__}, expected a float", "return a Python float", code="not_number")
    return float(value)


@checker("warmup_cosine_lr", kind="function")
def test_warmup_cosine_lr(warmup_cosine_lr: Callable, device: torch.device) -> str:
    rates.cached_schedule_failure(lambda *a: _as_float(_call(warmup_cosine_lr, "lr", *a), "warmup_cosine_lr"))
    for steps, warmup in [(200, 20), (37, 5), (1000, 100), (23, 1), (29, 2), (50, 0)]:
        got = []
        for s in range(steps):
            what = f"warmup_cosine_lr({s}, {steps}, {warmup})"
            try:
                got.append(_as_float(_call(warmup_cosine_lr, what, s, steps, warmup), what))
            except ZeroDivisionError:
                if warmup == 0:
                    fail(
                        "warmup_cosine_lr(step, steps, warmup_steps=0) divides by zero",
                        "with no warm-up, skip the warm-up branch: test `step < warmup_steps` first",
                        code="zero_warmup",
                    )
                raise
        got_t = torch.tensor(got, dtype=torch.float64)
        if warmup == 0 and not math.isfinite(got[0]):
            fail(
                f"warmup_cosine_lr(0, {steps}, warmup_steps=0) is {got[0]}, expected 1",
                "with no warm-up, skip the warm-up branch (0 / 0 is NaN): test `step < warmup_steps` first",
                code="zero_warmup",
            )
        right, catalogue = mistakes.schedule_candidates(steps, warmup)
        catalogue = catalogue + mistakes.swapped_arguments(ref.warmup_cosine_lr, steps, warmup)
        catalogue = catalogue + rates.decay_slips(right, steps, warmup, catalogue)
        if warmup == 0:
            _zero_warmup_case(got_t, right, steps)
        shared = torch.tensor([shared_warmup_cosine_lr(s, steps, warmup) for s in range(steps)], dtype=torch.float64)
        assert torch.allclose(right, shared), "the checker's reference disagrees with utils.schedules"
        slips.rounded_schedule_failure(got_t, right, steps, warmup)
        schedule_readback_failure(got_t, right, steps, warmup, catalogue)
        _cosine_floor(got_t, right, steps, warmup, catalogue)
        _cosine_period(got_t, right, steps, warmup, catalogue)
        slips.warmup_overwritten_failure(got_t, right, steps, warmup)
        ramp = mistakes.warmup_ramp_diagnosis(got_t, steps, warmup) or slips.warmup_diagnosis(got_t, right, warmup)
        expect_matches(
            got_t,
            right,
            f"warmup_cosine_lr(step, steps={steps}, warmup_steps={warmup})",
            catalogue,
            rtol=1e-6,
            atol=1e-7,
            dims="step",
            hint=ramp[1],
            code=ramp[0],
            reference=mistakes.Schedule(ref.warmup_cosine_lr, (steps, warmup)),
        )
    return "linear warm-up, then half a cosine to 0"


def _zero_warmup_case(got: Tensor, right: Tensor, steps: int) -> None:
    """Checked last, after the schedules with a warm-up passed: only the warmup_steps = 0 special case is wrong."""
    if torch.allclose(got, right, rtol=1e-6, atol=1e-7):
        return
    rates.zero_as_one_step_warmup_failure(got, steps)
    bad = (got - right).abs() > 1e-6
    seen = f"{float(got[0]):.4g} at every step" if bool((got == got[0]).all()) else "values off the cosine"
    fail(
        f"warmup_cosine_lr(step, steps={steps}, warmup_steps=0) differs from the schedule at {int(bad.sum())}/{steps} "
        f"steps (first at step {int(bad.nonzero()[0])}: got {float(got[bad][0]):.4g}, expected "
        f"{float(right[bad][0]):.4g}); you return {seen}",
        "the schedules with a warm-up are right: only the warmup_steps = 0 case is wrong. With no warm-up the "
        "schedule is the cosine alone, 0.5 * (1 + cos(π step / steps)), from 1 at step 0 down towards 0"
        + (": your warmup_steps == 0 case skips the cosine" if bool((got == got[0]).all()) else ""),
        code="zero_warmup_case",
    )


def _cosine_floor(got: Tensor, right: Tensor, steps: int, warmup: int, catalogue: list) -> None:
    """Name a cosine part that is an affine image a + b · (the right one), e.g. a minimum learning rate."""
    if torch.allclose(got, right, rtol=1e-6, atol=1e-7) or any(
        torch.allclose(got, v, rtol=1e-6, atol=1e-7) for _, _, v in catalogue
    ):
        return
    if not torch.allclose(got[:warmup], right[:warmup], rtol=1e-6, atol=1e-7):
        return  # the warm-up is wrong too: a whole-schedule scale or offset is named by the generic diagnosis
    g, r = got[warmup:], right[warmup:]
    if float(g.max() - g.min()) < 1e-9:
        seen, hint = mistakes.constant_cosine(float(g[0]))
        fail(
            f"after the warm-up your factor stays at {float(g[0]):.4g} at every step (steps={steps}, "
            f"warmup_steps={warmup}), expected half a cosine from 1 down to 0{seen}",
            hint,
            code="cosine_constant",
        )
    design = torch.stack([torch.ones_like(r), r], -1)
    a, b = torch.linalg.lstsq(design, g[:, None]).solution.flatten().tolist()
    if not torch.allclose(a + b * r, g, rtol=1e-6, atol=1e-6) or (abs(a) < 1e-4 and abs(b - 1) < 1e-4):
        return
    ends = f"goes from {a + b:.4g} down to {a:.4g}"
    if (slip := cosine_slip(a, b)) is not None:
        where = f"(steps={steps}, warmup_steps={warmup})"
        fail(f"after the warm-up your factor {ends} {where}: it equals {slip[0]} at every step", slip[1], code=slip[2])
    fail(
        f"after the warm-up your factor {ends}, expected half a cosine from 1 down to 0 (steps={steps}, "
        f"warmup_steps={warmup})",
        "no minimum learning rate: the cosine part is exactly 0.5 * (1 + cos(π progress)), which ends at 0"
        if a > 0 and abs(a + b - 1) < 1e-4
        else f"your cosine part is {a:.4g} + {b:.4g} × 0.5 * (1 + cos(π progress)): check its offset and scale",
        code="cosine_floor" if a > 0 and abs(a + b - 1) < 1e-4 else "cosine_affine",
    )


def _cosine_period(got: Tensor, right: Tensor, steps: int, warmup: int, catalogue: list) -> None:
    """Name a cosine part of another period or phase: got = a + b cos(ω progress + φ) exactly, for some ω.

    The right one is ω = π, φ = 0 (half a period over the decay). A grid over ω with a least-squares fit of
    (a, b cos φ, b sin φ) at each, refined around the best, finds any such schedule (cos without π, a full period,
    progress measured from step 0, ...); the message reports the fitted ω, a fact about the learner's output.
    """
    ok = lambda v: torch.allclose(got, v, rtol=1e-6, atol=1e-7)
    if (
        ok(right)
        or any(ok(v) for _, _, v in catalogue)
        or not ok(torch.where(torch.arange(steps) < warmup, right, got))
    ):
        return  # right, a known mistake, or the warm-up is wrong too
    t = (torch.arange(warmup, steps, dtype=torch.float64) - warmup) / (steps - warmup)
    g = got[warmup:]
    if t.numel() < 6:
        return

    def fit(omegas: Tensor) -> tuple[Tensor, Tensor]:
        design = torch.stack(
            [
                torch.ones_like(omegas)[:, None].expand(-1, t.numel()),
                (omegas[:, None] * t).cos(),
                (omegas[:, None] * t).sin(),
            ],
            -1,
        )
        coef = torch.linalg.lstsq(design, g.expand(len(omegas), -1)[..., None]).solution[..., 0]
        residual = (design @ coef[..., None])[..., 0] - g
        return residual.abs().amax(-1), coef

    # Degrees (180 or 360 where π or 2π belong) lie beyond the grid and alias on it: tried first, exactly.
    err, _ = fit(torch.tensor([180.0, 360.0], dtype=torch.float64))
    best = (180.0, 360.0)[int(err.argmin())] if float(err.min()) <= 1e-6 else None
    omegas = torch.linspace(0.05, 8 * math.pi, 4000, dtype=torch.float64)
    for _ in range(4 if best is None else 0):  # refine around the best ω
        err, _ = fit(omegas)
        best = float(omegas[int(err.argmin())])
        step = float(omegas[1] - omegas[0])
        omegas = torch.linspace(max(best - 2 * step, 1e-3), best + 2 * step, 400, dtype=torch.float64)
    err, coef = fit(torch.tensor([best], dtype=torch.float64))
    if float(err[0]) > 1e-6 or abs(best - math.pi) < 1e-3:
        return
    a, c, d = coef[0].tolist()
    amplitude, phase = math.hypot(c, d), math.atan2(-d, c)
    if amplitude < 1e-3:
        return
    shift = f" {phase:+.3g}" if abs(phase) > 1e-4 else ""
    named = "without π: cos(progress) in radians" if abs(best - 1) < 1e-3 else None
    if best in (180.0, 360.0):
        named = (
            f"in degrees ({best:g} where {'π' if best == 180 else '2π'} belongs; torch.cos and math.cos take radians)"
        )
    periods = best / (2 * math.pi)
    fail(
        f"after the warm-up your factor is {a:.3g} + {amplitude:.3g} cos(ω · progress{shift}) with ω = {best:.4g}, "
        f"expected 0.5 + 0.5 cos(π · progress) (steps={steps}, warmup_steps={warmup})",
        f"your cosine covers {periods:.3g} of a period over the decay, expected half a period (ω = π)"
        + (
            f": that is the cosine {named}. Multiply the progress by math.pi"
            if named
            else ": check the factor in front of the progress (it must be π) and that progress runs from 0 to 1"
        ),
        code="cosine_period",
    )


# --------------------------------------------------------------------------------------------
# DoubleDescentModel.generate_batch
# --------------------------------------------------------------------------------------------
def _rows_of(out: Tensor, data: Tensor) -> bool:
    """Every example of `out` [n inst feats] is one of the examples of `data` (whole [inst feats] rows)."""
    a, b = out.flatten(1).double(), data.flatten(1).double()
    return bool((a[:, None] - b[None]).abs().amax(-1).amin(-1).le(1e-6).all())


@checker("generate_batch", kind="class")
def test_generate_batch(DoubleDescentModel: type, device: torch.device) -> str:
    generate_batch = getattr(DoubleDescentModel, "generate_batch", None)
    if not callable(generate_batch):
        fail(
            f"{DoubleDescentModel.__name__} has no method generate_batch",
            "pass the DoubleDescentModel class whose generate_batch you wrote",
            code="no_method",
        )
    # The reference model holds the training set (only generate_batch is under test); n_train 40 != batch 16.
    cfg = ToyModelConfig(n_inst=3, n_features=50, d_hidden=2)
    n_train = 40
    model = RefDoubleDescentModel(cfg, n_train=n_train, feature_probability=0.1, device=device)
    with torch.no_grad():  # all-zero examples (rare at p = 0.1, 50 feats): make two so dropping them shows
        model.train_data[[5, 23]] = 0.0
        model.importance.copy_(torch.linspace(0.5, 1.5, 50).expand(3, 50))  # not all 1: a weighting shows
    data = model.train_data.clone()
    model.generate_batch = types.MethodType(generate_batch, model)  # self.generate_batch is the learner's method too
    first = _call(generate_batch, "generate_batch(16)", model, 16)
    what = "generate_batch(16)"
    probes.train_data_edited_failure(model.train_data, data, what)  # compared exactly, right after the call
    if isinstance(first, (list, tuple)) and len(first) > 0 and all(isinstance(t, Tensor) for t in first):
        fail(
            f"{what} returned a {type(first).__name__} of {len(first)} tensors, expected a tensor {tuple(data.shape)}",
            "return the tensor self.train_data itself, not a list of its rows (list(...) or [*...] splits it)",
            code="not_tensor",
        )
    if isinstance(first, Tensor) and first.device.type != "meta" and tuple(first.shape) != tuple(data.shape):
        other_model_tensor_failure(first, model, what)
        got, d = first.detach().to(data.device, torch.float64), data.double()
        probes.training_rows_failure(got, d, what, 16)
        if got.shape == (16, 3, 50) and _rows_of(got, d):
            fail(
                f"{what} returned 16 of the {n_train} training examples (batch_size rows), expected all of them",
                "training is full batch: return the whole self.train_data and ignore batch_size (no sampling or "
                "slicing of its rows)",
                code="batch_size_rows",
            )
        if got.shape == (16, 3, 50):
            norms = got.norm(dim=-1)
            unit = bool((((norms - 1).abs() < 1e-4) | (norms == 0)).all())
            fail(
                f"{what} returned {tuple(got.shape)}: 16 new examples, expected the {n_train} training examples",
                "you drew a fresh batch of batch_size examples (part 1's infinite-data setting): return the fixed "
                "training set self.train_data"
                if unit
                else "that is part 1's generate_batch (fresh, un-normalised examples): return self.train_data",
                code="fresh_batch" if unit else "part1_batch",
            )
        for k in range(3):
            if got.shape == (n_train, 50) and torch.allclose(got, d[:, k]):
                fail(
                    f"{what} has shape {tuple(got.shape)}: instance {k}'s training set only, expected "
                    f"{tuple(data.shape)}",
                    "return every instance's training set, self.train_data [n_train, inst, feats]: no indexing "
                    "of the inst axis",
                    code="one_instance",
                )
        if got.shape == (n_train - 2, 3, 50) and mistakes.same(got, d[d.abs().sum((1, 2)) > 0]):
            fail(
                f"{what} has {got.shape[0]} examples, expected {n_train}: the all-zero training examples are missing",
                "return self.train_data as it is: examples with no feature present are part of the training set",
                code="dropped_empty",
            )
        if got.shape == (3, n_train, 50) and torch.allclose(got, d.transpose(0, 1)):
            fail(
                f"{what} has shape {tuple(got.shape)}, expected {tuple(data.shape)}",
                "return self.train_data as it is, [n_train, inst, feats]: no transpose",
                code="axis_order",
            )
    slips.nonfinite_rows_failure(first, data, what)
    first = expect_tensor(
        first, what, shape=tuple(data.shape), dims="examples inst feats", dtype=torch.float32, device=device
    )
    parameter_source_failure(first, model, what)
    absent_filled_failure(first, data, what)
    if first.requires_grad and mistakes.same(first, data):
        fail(
            f"{what} requires grad: the training data became a trainable tensor (nn.Parameter, or requires_grad_?)",
            "return the buffer self.train_data itself: the data is an input, not a parameter of the model",
            code="requires_grad",
        )
    second = _call(generate_batch, "generate_batch()", model)
    second = expect_tensor(
        second, "generate_batch() (no batch size)", shape=tuple(data.shape), dims="examples inst feats"
    )
    if not mistakes.same(model.train_data, data):
        fail("generate_batch changed self.train_data", "return the training set without modifying it", code="modified")
    small = _call(generate_batch, "generate_batch(2)", model, 2)  # 2 < inst (3) < n_train (40) < feats (50)
    if mistakes.same(first, data) and isinstance(small, Tensor) and not mistakes.same(small, data):
        cut = [n for n, a, b in zip(("examples", "inst", "feats"), small.shape, data.shape, strict=False) if a != b]
        fail(
            f"generate_batch(2) returned shape {tuple(small.shape)}, expected {tuple(data.shape)} (16 gave the whole "
            "set only because 16 > n_inst = 3)",
            f"batch_size cuts the {' and '.join(cut) or 'data'} axis (train_data[:, :batch_size] slices the "
            "instances): return the whole self.train_data and ignore batch_size",
            code="batch_size_slice",
        )
    slips.tiled_failure(_call(generate_batch, "generate_batch(100)", model, 100), data, 100)  # 100 > n_train
    size_one_batch_failure(generate_batch, device)
    if mistakes.same(first, data) and mistakes.same(second, data):
        return "the same full training set at every call"
    wrong = first if not mistakes.same(first, data) else second
    with torch.inference_mode():
        reconstruction = model(data)
    if torch.allclose(wrong, reconstruction, atol=1e-6):
        fail(
            "generate_batch returned the model's output on the training set",
            "return the inputs self.train_data themselves, not the model applied to them",
            code="model_output",
        )
    if all(torch.allclose(wrong[:, k], data[:, 0]) for k in range(3)):
        fail(
            "every instance got instance 0's training set",
            "each instance has its own training set: return self.train_data, all instances",
            code="first_instance",
        )
    if _rows_of(wrong, data):
        if mistakes.same(first, second):
            fail(
                "generate_batch returned the training examples in another order",
                "return self.train_data as it is (no shuffling needed: every step uses the whole set)",
                code="shuffled",
            )
        fail(
            "generate_batch returned training examples, but a different selection at every call",
            "training is full batch: return all of self.train_data, not a random sample of its rows",
            code="minibatch",
        )
    model_tensor_scaled_failure(wrong, model, data)
    mistakes.transformed_failure(wrong, data)
    probes.reordered_failure(wrong, data)
    train_data_transform_failure(wrong, data)
    if mistakes.same(first, second):
        fail(
            "generate_batch returned the same data at both calls, but not self.train_data (nor its values reordered, "
            "nor a centred, standardised or shifted copy of it)",
            "return the one drawn in __init__, self.train_data, unchanged (e.g. a data set of your own, drawn again "
            "with a fixed seed, or another transform of self.train_data?)",
            code="regenerated",
        )
    diff = (wrong.detach().double() - data.double()).abs()
    seen = f"; the first differs from self.train_data by up to {float(diff.max()):.3g} (mean {float(diff.mean()):.3g})"
    near = float(diff.max()) < 0.2 * float(data.abs().max())
    fail(
        "two calls of generate_batch returned different data" + seen,
        "return the fixed training set self.train_data unchanged: "
        + (
            "your batches stay close to it but change at every call, so something random is added to it or mixed "
            "in (noise such as + 0.01 * torch.randn_like(...), dropout?)"
            if near
            else "possible causes: new examples drawn at every step (part 1's infinite-data setting), or the "
            "training set with random changes (noise) at every call"
        ),
        code="not_fixed",
    )


# --------------------------------------------------------------------------------------------
# compute_dimensionality
# --------------------------------------------------------------------------------------------
CD4_FORMULA = "D_i = ‖v_i‖² / Σ_j (v̂_i·v_j)², v̂_i = v_i / ‖v_i‖, the sum over every vector j of the instance"


@checker("compute_dimensionality", kind="function")
def test_compute_dimensionality(compute_dimensionality: Callable, device: torch.device) -> str:
    g = torch.Generator().manual_seed(7)
    # 3 instances, 7 vectors in 3 dimensions, norms spread over two orders of magnitude
    v = (torch.randn(3, 7, 3, generator=g) * torch.logspace(-1, 1, 7)[None, :, None]).to(device)
    v_in = v.clone()
    what = "compute_dimensionality(v)"
    values, shapes = slips.dimensionality_candidates(v.cpu())
    values += regrouped_candidates(v.cpu(), mistakes.dimensionality, "v", ("inst", "vectors", "d"))
    out = _call(compute_dimensionality, what, v_in)
    upcast_failure(out, v, what, name="v")
    out = expect_output(out, what, (3, 7), "inst vectors", torch.float32, device, shapes)
    expect_unmodified(v_in, v, what, name="vectors")
    expected = mistakes.dimensionality(v.cpu())
    code, hint = mistakes.gram_rows_diagnosis(out, v) or ("values", CD4_FORMULA)
    if code == "values" and unexplained(out, expected, values, "inst vectors", atol=1e-6):
        probes.dimensionality_probes(lambda x: _call(compute_dimensionality, what, x), v, out, expected)
    expect_matches(
        out.double().cpu(),
        expected,
        what,
        values,
        rtol=1e-4,
        atol=1e-6,
        dims="inst vectors",
        hint=hint,
        code=code,
        reference=call(ref.compute_dimensionality, v),
    )
    # one instance: the inst axis must stay
    out1 = _call(compute_dimensionality, "compute_dimensionality(v[:1])", v[:1].clone())
    if isinstance(out1, Tensor) and tuple(out1.shape) == (7,):
        fail(
            "for v of shape (1, 7, 3) the output has shape (7,), expected (inst=1, vectors=7)",
            "keep the inst axis: don't .squeeze() (it drops the inst axis when there is one instance)",
            code="squeezed",
        )
    out1 = expect_tensor(out1, "compute_dimensionality(v[:1])", shape=(1, 7), dims="inst vectors")
    expect_matches(
        out1,
        mistakes.dimensionality(v[:1].cpu()),
        "compute_dimensionality(v[:1])",
        dims="inst vectors",
        hint=CD4_FORMULA,
        reference=call(ref.compute_dimensionality, v[:1]),
    )

    # before the pentagons: an eps in the denominator shows there as a small shift, which the tiny vector names
    small_vector_failure(lambda x: _call(compute_dimensionality, "compute_dimensionality(v)", x), device)
    # Two regular pentagons (lengths 1.3 and 0.7, one rotated): every vector gets 2/5 of a dimension.
    angles = torch.arange(5) * 2 * math.pi / 5
    pentagon = torch.stack([angles.cos(), angles.sin()], -1)
    turned = torch.stack([(angles + 0.3).cos(), (angles + 0.3).sin()], -1)
    pentagons = torch.stack([1.3 * pentagon, 0.7 * turned])
    # (symmetric inputs: the mutants that coincide with the answer here were told apart on v above)
    values = mistakes.separable(
        torch.full((2, 5), 0.4, dtype=torch.float64), mistakes.dimensionality_candidates(pentagons)[0]
    )
    out = expect_tensor(
        _call(compute_dimensionality, "compute_dimensionality(pentagons)", pentagons.to(device)),
        "compute_dimensionality(two pentagons)",
        shape=(2, 5),
        dims="inst vectors",
    )
    expect_matches(
        out.double().cpu(),
        torch.full((2, 5), 0.4, dtype=torch.float64),
        "compute_dimensionality of two regular pentagons (expected 2/5 each)",
        values,
        rtol=1e-4,
        atol=1e-6,
        dims="inst vectors",
        hint=CD4_FORMULA,
        reference=call(ref.compute_dimensionality, pentagons),
    )

    # A zero vector (a dropped feature, an empty example) has dimensionality 0, not NaN.
    with_zero = torch.cat([v[:1, :4].cpu(), torch.zeros(1, 1, 3)], 1)
    out = expect_tensor(
        _call(compute_dimensionality, "compute_dimensionality(v)", with_zero.to(device)),
        "compute_dimensionality with a zero vector",
        shape=(1, 5),
        dims="inst vectors",
        finite=False,
    )
    expected = mistakes.dimensionality(with_zero)
    zero_vector_failure(out, expected)
    at_zero, others = out[:, -1].double().cpu(), out[:, :-1].double().cpu()
    if at_zero.abs().max() <= 1e-6 and not torch.allclose(others, expected[:, :-1], rtol=1e-4, atol=1e-6):
        expect_matches(
            others,
            expected[:, :-1],
            "compute_dimensionality with a zero vector, at the other (small) vectors",
            mistakes.clamp_candidates(with_zero[:, :-1]),
            rtol=1e-4,
            atol=1e-6,
            dims="inst vectors",
            hint="the zero vector gets 0 but the other vectors (norms below 1 here) changed: does the guard against "
            "0 / 0 (a clamp or an epsilon) also change small non-zero values?",
            code="zero_guard_others",
            reference=call(ref.compute_dimensionality, with_zero, pick=lambda out: out[:, :-1]),
        )
    expect_close(
        out.double().cpu(),
        expected,
        "compute_dimensionality with a zero vector (expected 0 for it)",
        "a zero vector has no share of any dimension: its dimensionality is 0, and it adds nothing to the others",
        code="zero_vector_value",
        rtol=1e-4,
        atol=1e-6,
        dims="inst vectors",
    )
    return "‖vᵢ‖² / Σⱼ (v̂ᵢ·vⱼ)², per instance"
