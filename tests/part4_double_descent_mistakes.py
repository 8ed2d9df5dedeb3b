"""The catalogue of known mistakes for part 4's checkers (`tests.part4_double_descent`).

Deterministic exercises (the schedule, the dimensionality): what a realistic buggy implementation returns
on the checker's inputs (a mutant of the reference), with the code and hint the checker reports when a
learner's output matches it. The data-set generator: the statistics that tell its mistakes apart (which
normalisation was applied, which rate the presence follows, which axis the randomness is shared along,
which distribution the values come from).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from tests.checking import FAILURE_PROBABILITY, bernstein_tolerance, fail
from tests.mutants import Reference
from tests.part4_double_descent_batch_values import present_values_reading
from tests.part4_double_descent_divisors import common_divisor_diagnosis, summary_divisor_diagnosis
from tests.part4_double_descent_mask_order import normalised_before_mask
from tests.part4_double_descent_presence_hints import PRESENCE_INVERTED, rate_readback, unscaled_small_rows

Mistake = tuple[str, str, Tensor]


def separable(right: Tensor, catalogue: list[Mistake], rtol: float = 1e-6, atol: float = 1e-7) -> list[Mistake]:
    """The mutants of `catalogue` that differ from `right` and from every earlier mutant on these inputs.

    On special inputs (no warm-up, a symmetric polygon) several mistakes give the right answer or each other's;
    the checker tells those apart on its generic inputs, and keeps only the ones these inputs can separate.
    """
    out: list[Mistake] = []
    for code, hint, value in catalogue:
        others = [right, *(v for _, _, v in out)]
        if any(v.shape == value.shape and torch.allclose(value, v, rtol=rtol, atol=atol) for v in others):
            continue
        out.append((code, hint, value))
    return out


# --------------------------------------------------------------------------------------------
# warmup_cosine_lr
# --------------------------------------------------------------------------------------------
def _cos(progress: float) -> float:
    return 0.5 * (1 + math.cos(math.pi * progress))


class Schedule(Reference):
    """The solution's `warmup_cosine_lr(step, steps, warmup_steps)` at every step, as one float64 tensor (the
    mutants edit the function; this runs it once per step, as the checker does)."""

    def run(self, fn: Callable | None = None) -> Tensor:
        schedule = fn or self.fn
        steps, warmup = self.args
        return torch.tensor([float(schedule(s, steps, warmup)) for s in range(steps)], dtype=torch.float64)


def constant_cosine(c: float) -> tuple[str, str]:
    """What a cosine part constant at c says about progress (0.5 (1 + cos(π progress)) = c), and its causes."""
    if abs(c) < 1e-9:
        return ": 0.5 * (1 + cos(π progress)) = 0 means progress is always 1", (
            "progress = (step - warmup_steps) / (steps - warmup_steps) is 1 at every step: possible causes: its "
            "numerator doesn't use the current step (`steps` written for `step`, so numerator and denominator are "
            "the same), the last step used in place of the current one, or the cosine part replaced by 0"
        )
    if abs(c - 1) < 1e-9:
        return ": 0.5 * (1 + cos(π progress)) = 1 means progress is always 0", (
            "progress = (step - warmup_steps) / (steps - warmup_steps) is 0 at every step: possible causes: integer "
            "division `//` or an int() cast of the fraction, a numerator that doesn't use the current step "
            "(warmup_steps - warmup_steps, or a step counter that never advances), or the cosine part left out"
        )
    if -1e-9 <= c <= 1 + 1e-9:
        progress = math.acos(min(1.0, max(-1.0, 2 * c - 1))) / math.pi
        seen = f": 0.5 * (1 + cos(π progress)) = {c:.4g} means progress stays at {progress:.4g}"
    else:
        seen = ", a value half a cosine never takes"
    return seen, (
        "the factor never decays, so progress = (step - warmup_steps) / (steps - warmup_steps) doesn't change with "
        "the step: possible causes: a variable other than the current step in its numerator, a value computed once "
        "(at the first step) and reused, or the cosine part replaced by a constant"
    )


def schedule_candidates(steps: int, warmup: int) -> tuple[Tensor, list[Mistake]]:
    """The right factors for every step, and what the usual mistakes give.

    A mutant that equals the reference (or an earlier mutant) on these sizes is left out: with no warm-up,
    for example, every mistake about the warm-up coincides with the right answer. The checker's other sizes
    tell those apart.
    """

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
            "progress_not_shifted",
            "the cosine's progress is (step - warmup_steps) / (steps - warmup_steps): subtract warmup_steps from "
            "step too, so the cosine starts at 1 right after the warm-up",
            lambda s: warm(s, lambda t: _cos(t / rest)),
        ),
        (
            "cosine_length",
            "the cosine must end at the last step: divide by steps - warmup_steps, not by steps",
            lambda s: warm(s, lambda t: _cos((t - warmup) / steps)),
        ),
        (
            "cosine_end_off_by_one",
            "progress is (step - warmup_steps) / (steps - warmup_steps), not / (steps - warmup_steps - 1)",
            lambda s: warm(s, lambda t: _cos((t - warmup) / max(1, rest - 1))),
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
            "cosine_no_offset",
            "half a cosine from 1 to 0 is 0.5 * (1 + cos(π progress)): the `1 +` is missing",
            lambda s: warm(s, lambda t: 0.5 * math.cos(math.pi * (t - warmup) / rest)),
        ),
        (
            "full_cosine",
            "half a cosine: 0.5 (1 + cos(π progress)), not cos(2π progress) (that goes down and back up), nor "
            "cos(π progress)² (the same values: cos² x = 0.5 (1 + cos 2x); the half-angle form is cos(π progress/2)²)",
            lambda s: warm(s, lambda t: _cos(2 * (t - warmup) / rest)),
        ),
        (
            "cosine_rising",
            "the cosine part decays from 1 to 0: 0.5 * (1 + cos(π progress)), not 0.5 * (1 - cos(π progress)); the "
            "same values come from a progress that runs from 1 down to 0 (the fraction left, (steps - step) / "
            "(steps - warmup_steps)): progress = (step - warmup_steps) / (steps - warmup_steps) runs from 0 up to 1",
            lambda s: warm(s, lambda t: 1 - _cos((t - warmup) / rest)),
        ),
        (
            "warmup_off_by_one",
            "the warm-up starts at 0 at step 0: the factor is step / warmup_steps, not (step + 1) / warmup_steps",
            lambda s: (s + 1) / warmup if s < warmup else right(s),
        ),
        (
            "warmup_length",
            "the warm-up rises from 0 to 1 over warmup_steps steps: divide by warmup_steps, not by steps",
            lambda s: s / steps if s < warmup else right(s),
        ),
        (
            "integer_division",
            "step // warmup_steps is 0 during the whole warm-up: use true division, step / warmup_steps",
            lambda s: float(s // warmup) if s < warmup else right(s),
        ),
        (
            "warmup_off_by_one",
            "the warm-up is step / warmup_steps: it starts at exactly 0 and reaches 1 at step = warmup_steps "
            "(where the cosine starts), not (step + 1) / (warmup_steps + 1) or step / (warmup_steps - 1)",
            lambda s: (s + 1) / (warmup + 1) if s < warmup else right(s),
        ),
        (
            "warmup_off_by_one",
            "the warm-up is step / warmup_steps: it starts at exactly 0 and reaches 1 at step = warmup_steps "
            "(where the cosine starts), not (step + 1) / (warmup_steps + 1) or step / (warmup_steps - 1)",
            lambda s: s / (warmup - 1) if s < warmup else right(s),
        ),
        (
            "quarter_cosine",
            "half a cosine: 0.5 * (1 + cos(π progress)) goes from 1 to 0; cos(π/2 · progress) is a quarter "
            "period and has another shape",
            lambda s: warm(s, lambda t: math.cos(math.pi / 2 * (t - warmup) / rest)),
        ),
        (
            "cosine_start_off_by_one",
            "the cosine's progress is (step - warmup_steps) / (steps - warmup_steps): exactly 0 (factor 1) at "
            "step = warmup_steps, no + 1",
            lambda s: warm(s, lambda t: _cos((t - warmup + 1) / rest)),
        ),
        (
            "sine_not_cosine",
            "the decay is 0.5 * (1 + cos(π progress)), a cosine: with sin it starts at ½ instead of 1, peaks halfway "
            "and ends at ½ instead of 0",
            lambda s: warm(s, lambda t: 0.5 * (1 + math.sin(math.pi * (t - warmup) / rest))),
        ),
        (
            "warmup_constant",
            "during the warm-up the factor rises linearly from 0 (step / warmup_steps), it isn't constant",
            lambda s: 1.0 if s < warmup else right(s),
        ),
        *[
            (
                "cosine_parentheses",
                f"a parenthesis is misplaced in the cosine part: you compute {form}; half a cosine from 1 to 0 is "
                "0.5 * (1 + math.cos(math.pi * progress)), the `1 +` outside the cosine and the 0.5 on both terms",
                lambda s, f=f: warm(s, lambda t: f((t - warmup) / rest)),
            )
            for form, f in (
                ("0.5 * cos(π · progress + 1)", lambda q: 0.5 * math.cos(math.pi * q + 1)),
                ("0.5 * 1 + cos(π · progress)", lambda q: 0.5 + math.cos(math.pi * q)),
                ("0.5 * (1 + cos(π) · progress)", lambda q: 0.5 * (1 - q)),
                ("0.5 * (1 + cos(π · progress + 1))", lambda q: 0.5 * (1 + math.cos(math.pi * q + 1))),
            )
        ],
        *[
            (
                "warmup_times_cosine",
                f"your factor is the warm-up ramp times the cosine at every step, {form}, with no branch: the phases "
                "are separate, step / warmup_steps while step < warmup_steps, then the cosine alone, with progress "
                "(step - warmup_steps) / (steps - warmup_steps)",
                lambda s, f=f: (min(1.0, s / warmup) if warmup > 0 else 1.0) * f(s),
            )
            for form, f in (
                ("min(1, step / warmup) · 0.5 (1 + cos(π step / steps))", lambda s: _cos(s / steps)),
                (
                    "min(1, step / warmup) · 0.5 (1 + cos(π (step - warmup) / (steps - warmup)))",
                    lambda s: _cos((s - warmup) / rest),
                ),
            )
        ],
    ]
    values = torch.tensor([right(s) for s in range(steps)], dtype=torch.float64)
    out: list[Mistake] = []
    for code, hint, f in mistakes:
        try:
            out.append((code, hint, torch.tensor([f(s) for s in range(steps)], dtype=torch.float64)))
        except ZeroDivisionError:
            continue
    return values, separable(values, out)


# --------------------------------------------------------------------------------------------
# compute_dimensionality
# --------------------------------------------------------------------------------------------
def dimensionality(v: Tensor) -> Tensor:
    """‖vᵢ‖² / Σⱼ (v̂ᵢ·vⱼ)² of v [inst n d] in float64, 0 for a zero vector."""
    v = v.double()
    norm_sq = (v**2).sum(-1)
    den = torch.einsum("kid,kjd->kij", v, v).pow(2).sum(-1)
    return torch.where(den > 0, norm_sq**2 / den.clamp_min(1e-300), 0.0)


GRAM_ROWS = (
    "your denominator sums the whole row i of v̂ G v̂ᵀ (G = vᵀv, the d×d matrix Σⱼ vⱼvⱼᵀ), Σₗ v̂ᵢ G v̂ₗᵀ: Σⱼ (v̂ᵢ·vⱼ)² is "
    "only its diagonal entry (i, i), v̂ᵢ G v̂ᵢᵀ (torch.diagonal(..., dim1=-2, dim2=-1), or ((v̂ @ G) * v̂).sum(-1))"
)


def gram_rows_diagnosis(out: Tensor, v: Tensor) -> tuple[str, str] | None:
    """(code, hint) when `out` is ‖vᵢ‖² / Σₗ (v̂ G v̂ᵀ)ᵢₗ wherever that row sum is positive (a clamp or guard makes the
    other positions arbitrary): the row of the Gram form summed instead of its diagonal entry."""
    if not isinstance(out, Tensor) or tuple(out.shape) != tuple(v.shape[:2]) or not out.is_floating_point():
        return None
    v = v.double().cpu()
    norm_sq = (v**2).sum(-1)
    dots = torch.einsum("kid,kjd->kij", v / norm_sq.sqrt().clamp_min(1e-300)[..., None], v)
    rows = torch.einsum("kij,klj->kil", dots, dots).sum(-1)
    pos = rows > 1e-6 * norm_sq**2
    got = out.detach().double().cpu()
    if int(pos.sum()) < max(3, pos.numel() // 3) or not torch.allclose(got[pos], (norm_sq / rows)[pos], rtol=1e-4):
        return None
    return "gram_row_sum", GRAM_ROWS


def dimensionality_candidates(v: Tensor) -> tuple[list[Mistake], list[Mistake]]:
    """What the usual mistakes give on v [inst n d]: (same shape as the answer, other shapes)."""
    v = v.double()
    norm_sq = (v**2).sum(-1)
    unit = v / norm_sq.sqrt().clamp_min(1e-300)[..., None]
    dots = torch.einsum("kid,kjd->kij", unit, v)
    den = (dots**2).sum(-1)
    eye = torch.eye(v.shape[1], dtype=torch.bool)
    raw = torch.einsum("kid,kjd->kij", v, v)
    both_unit = torch.einsum("kid,kjd->kij", unit, unit)
    unit_axis = v / v.norm(dim=1, keepdim=True).clamp_min(1e-300)  # normalised over the vectors (wrong)
    values = [
        (
            "self_excluded",
            "the sum over j includes j = i (a lone vector then has dimensionality 1)",
            norm_sq / torch.where(eye, 0.0, dots**2).sum(-1),
        ),
        (
            "unnormalised",
            "normalise the first vector: (v̂ᵢ · vⱼ)² with v̂ᵢ = vᵢ / ‖vᵢ‖, not (vᵢ · vⱼ)² (the same values come "
            "from leaving the numerator ‖vᵢ‖² out: 1 / Σⱼ (v̂ᵢ · vⱼ)²)",
            norm_sq / (raw**2).sum(-1),
        ),
        (
            "both_normalised",
            "normalise only the first vector: (v̂ᵢ · vⱼ)², not (v̂ᵢ · v̂ⱼ)²",
            norm_sq / (both_unit**2).sum(-1),
        ),
        ("not_squared", "square the dot products: Σⱼ (v̂ᵢ · vⱼ)², not Σⱼ |v̂ᵢ · vⱼ|", norm_sq / dots.abs().sum(-1)),
        *[
            (
                "distances_not_dots",
                f"your denominator sums squared distances {label} (torch.cdist measures distances): the overlap is "
                "the dot product v̂ᵢ · vⱼ (v̂ @ v.mT, or an einsum), how far vⱼ reaches along v̂ᵢ; Σⱼ (v̂ᵢ · vⱼ)²",
                norm_sq / torch.cdist(a, b).pow(2).sum(-1),
            )
            for label, a, b in (("‖v̂ᵢ - vⱼ‖²", unit, v), ("‖vᵢ - vⱼ‖²", v, v), ("‖v̂ᵢ - v̂ⱼ‖²", unit, unit))
        ],
        (
            "square_of_sum",
            "square each dot product *before* summing: Σⱼ (v̂ᵢ · vⱼ)², not (Σⱼ v̂ᵢ · vⱼ)²",
            norm_sq / dots.sum(-1).pow(2),
        ),
        (
            "numerator",
            "your values are the right ones divided by ‖vᵢ‖: a power of the norm is off by one somewhere, e.g. the "
            "numerator ‖vᵢ‖ where ‖vᵢ‖² was meant, or the squared overlaps (vᵢ · vⱼ)² divided by ‖vᵢ‖ where "
            "(v̂ᵢ · vⱼ)² = (vᵢ · vⱼ)² / ‖vᵢ‖² needs the square",
            norm_sq.sqrt() / den,
        ),
        (
            "self_term_twice",
            "your denominator counts the self-term (v̂ᵢ · vᵢ)² = ‖vᵢ‖² twice: the sum over every j already includes "
            "j = i, so don't add ‖vᵢ‖² to it",
            norm_sq / (den + norm_sq),
        ),
        (
            "numerator_power",
            "your values are the right ones times ‖vᵢ‖², which either of two slips gives: the unit vector computed as "
            "vᵢ / ‖vᵢ‖² (divide by the norm ‖vᵢ‖, with its square root), or the two forms mixed (with v̂ᵢ in the "
            "denominator the numerator is ‖vᵢ‖²; ‖vᵢ‖⁴ goes with the unnormalised vᵢ · vⱼ)",
            norm_sq**2 / den,
        ),
        (
            "sum_axis",
            "your values are 1 / Σⱼ (v̂ᵢ · v̂ⱼ)² (every norm cancelled), which four mistakes give: the sum over i "
            "instead of j (dim=-1, the *second* index of v̂ᵢ · vⱼ: Σⱼ (v̂ᵢ · vⱼ)²); the wrong vector normalised "
            "(Σⱼ (vᵢ · v̂ⱼ)² instead of Σⱼ (v̂ᵢ · vⱼ)²); cosines² weighted by ‖vᵢ‖² instead of ‖vⱼ‖² (norms "
            "broadcast along i: n2[..., None] where n2[..., None, :] was meant); or both vectors normalised and the "
            "numerator left out",
            norm_sq / (dots**2).sum(-2),
        ),
        ("mean_not_sum", "the denominator is a *sum* over the n vectors, not a mean", norm_sq / (dots**2).mean(-1)),
        ("gram_row_sum", GRAM_ROWS, norm_sq / torch.einsum("kij,klj->kil", dots, dots).sum(-1)),
        (
            "normalise_axis",
            "normalise each vector over its d coordinates (dim=-1), not over the n vectors (dim=1)",
            norm_sq / (torch.einsum("kid,kjd->kij", unit_axis, v) ** 2).sum(-1),
        ),
        (
            "instance_mixing",
            "each instance is a separate set of vectors: only sum over vectors j of the same instance",
            norm_sq / torch.einsum("kid,ljd->kij", unit, v).pow(2).sum(-1),
        ),
        (
            "first_instance",
            "every instance got instance 0's values: compute the overlaps of each instance's own vectors",
            (norm_sq / den)[:1].expand_as(norm_sq),
        ),
    ]
    right = dimensionality(v)
    shapes = [
        ("transposed_output", "return [inst, n]: the instances first, one value per vector", right.T),
        (
            "vector_axis",
            "the input is [inst, n, d]: each row v[inst, i] is a vector (you treated the columns as vectors)",
            dimensionality(v.transpose(1, 2)),
        ),
        ("all_pairs", "sum the squared overlaps over j, so there is one number per vector", norm_sq[..., None] / dots),
    ]
    # .T on a 3-d tensor reverses all three axes ([inst, n, d] -> [d, n, inst]); part 3's compute_dimensionality reads
    # [inst, d_hidden, feats], so on v.T it sees d instances of `inst` vectors in n dimensions.
    reversed_axes = (
        "transpose_all",
        "your output is the dimensionality computed on v.T: on a 3-d tensor .T reverses all three axes ([inst, n, "
        "d] becomes [d, n, inst]); to hand part 3's compute_dimensionality its [inst, d_hidden, feats] layout swap "
        "only the last two axes: v.mT (or v.transpose(-1, -2))",
    )
    for table in (dimensionality(v.permute(2, 0, 1)), dimensionality(v.permute(2, 1, 0))):
        if table.shape == right.shape:
            values.append((*reversed_axes, table))
        else:
            shapes.append((*reversed_axes, table))
    return values, shapes


def clamp_candidates(v: Tensor) -> list[Mistake]:
    """A guard against 0 / 0 that also changes small vectors: a clamp at 1 instead of a tiny value."""
    v = v.double()
    norm_sq = (v**2).sum(-1)
    hint = "clamp only to avoid 0 / 0: clamp_min(1e-12), not clamp_min(1), which changes every vector of norm below 1"
    unit = v / norm_sq.sqrt().clamp_min(1.0)[..., None]
    return [
        (
            "clamp_too_large",
            hint,
            norm_sq / (torch.einsum("kid,kjd->kij", v / norm_sq.sqrt()[..., None], v) ** 2).sum(-1).clamp_min(1.0),
        ),
        ("clamp_too_large", hint, norm_sq / (torch.einsum("kid,kjd->kij", unit, v) ** 2).sum(-1)),
    ]


# --------------------------------------------------------------------------------------------
# generate_dataset: statistics that name the mistake
# --------------------------------------------------------------------------------------------
# Every statistic of the data-set check gets failure probability FAILURE_PROBABILITY / GEN_TESTS (a union
# bound over the at most 100 tests one run of the checker makes).
GEN_TESTS = 100
NORM_TOL = 1e-4  # float32 division by a norm: relative error a few ulps


def tolerance(n: int, var: float, value_range: float = 1.0) -> float:
    """Bernstein bound for the mean of n independent draws with this variance and range."""
    return bernstein_tolerance(max(n, 1), var, value_range, FAILURE_PROBABILITY / GEN_TESTS)


def norm_diagnosis(x: Tensor, p: float) -> tuple[str, str]:
    """Which normalisation x [examples inst feats] (float64, no NaN) looks like it has, as (code, hint)."""
    one = torch.ones((), dtype=torch.float64)
    row_l2 = x.norm(dim=-1)
    nonzero = row_l2 > 0
    close = lambda a: bool(a.numel() > 0 and torch.allclose(a, one.expand_as(a), atol=NORM_TOL))
    if close(x.sum(-1)[nonzero]):
        return "l1_norm", "divide by the Euclidean (L2) norm x.norm(dim=-1), not by the sum of the features"
    if close(x.amax(-1)[nonzero]):
        return "max_norm", "divide by the Euclidean norm of the example, not by its largest value"
    feature_norms = x.norm(dim=0)
    if close(feature_norms[feature_norms > 0]):
        return "norm_axis", (
            "every *feature* has unit norm over the examples: normalise each example over the feature axis "
            "instead (dim=-1), not over the examples (dim=0)"
        )
    inst_norms = x.norm(dim=1)
    if close(inst_norms[inst_norms > 0]):
        return "norm_axis_instances", (
            "every (example, feature) has unit norm over the *instances*: normalise over the feature axis "
            "(dim=-1), not dim=1"
        )
    both = x.norm(dim=(1, 2))
    if close(both[both > 0]):
        return "norm_axis_instances", (
            "each example has unit norm over instances *and* features together: normalise each instance's "
            "example separately, over the feature axis only (dim=-1)"
        )
    for dims, what in (
        ((0, 1), "feature, over all examples and instances"),
        ((0, 2), "instance, over its whole data set"),
    ):
        other = x.norm(dim=dims)
        if close(other[other > 0]):
            return "norm_axis_other", (
                f"every {what}, has unit norm: the norm was taken over dims {dims} (or torch.renorm(x, 2, dim, 1), "
                "which rescales each slice *indexed by* dim, and only shrinks); normalise each example over the "
                "feature axis only: x / x.norm(dim=-1, keepdim=True)"
            )
    if close(x.norm()[None]):
        return "norm_global", "divide each example by its own norm (dim=-1, keepdim=True), not by the whole tensor's"
    count = (x != 0).sum(-1).double()  # the number of non-zero entries of each example
    if bool((count > 1).any()) and torch.allclose(row_l2[nonzero], count[nonzero].sqrt(), rtol=NORM_TOL):
        k = int(count.max())
        return "norm_sqrt_count", (
            f"every example's L2 norm is √(its number of non-zero entries) (an example with {k} has norm "
            f"{k**0.5:.4g} = √{k}): the unit-norm example is multiplied by √(number present) (or divided by the "
            "norm over the present entries' RMS); divide each example by its own norm and nothing else"
        )
    f = x.shape[-1]
    if f > 1 and torch.allclose(row_l2[nonzero], torch.full_like(row_l2[nonzero], f**0.5), rtol=NORM_TOL):
        return "norm_rms", (
            f"every example's L2 norm is √{f} = √(number of features): it was divided by its RMS, the root of the "
            "*mean* of squares (x.pow(2).mean(-1).sqrt()), not by the L2 norm, the root of the *sum* of squares"
        )
    if x.max() > 1 + NORM_TOL:
        undone = x / (row_l2**2).clamp_min(1e-300)[..., None]  # x / ‖x‖² recovers the raw values if x = raw / ‖raw‖²
        if 0.9 <= undone.max() <= 1 + NORM_TOL:  # the raw values come back (their max near 1), not a rescaling
            return "norm_squared", "divide by the norm ‖x‖, not by the squared norm ‖x‖² (x.pow(2).sum(-1))"
        if abs(float(undone.max()) - 2) < 0.05:  # x = raw / (2‖raw‖²): `s ** 1/2` parses as (s ** 1) / 2
            return "power_precedence", (
                "every example is raw / (2‖raw‖²): `x / s ** 1/2` parses as (x / s) / 2, since ** binds before /; "
                "write s ** 0.5 or s.sqrt() (or x.norm(dim=-1, keepdim=True))"
            )
    # x = raw / sqrt(Σ raw) (the squares left out of the root): x * Σx recovers the raw U[0, 1] values
    raw = (x * x.sum(-1, keepdim=True))[x > 0]
    uniform = raw.numel() > 100 and abs(raw.mean().item() - 0.5) <= tolerance(raw.numel(), 1 / 12)
    if uniform and float(raw.max()) <= 1 + NORM_TOL:
        return "norm_squares_missing", (
            "every example was divided by the square root of its *sum*, sqrt(x.sum(-1)): the squares are "
            "missing inside the root; the L2 norm is x.pow(2).sum(-1).sqrt() (x.norm(dim=-1))"
        )
    rows = row_l2[nonzero]
    unit = (rows - 1).abs() <= NORM_TOL
    longer = rows > 1 + NORM_TOL
    if 0.05 < float(unit.double().mean()) < 0.95 and bool((unit | longer).all()):
        return "norm_capped_at_one", (
            f"{int(unit.sum())} examples are unit and the other {int(longer.sum())} all have norms above 1 (up to "
            f"{float(rows.max()):.3g}): the examples longer than 1 were not normalised, as when the divisor is capped "
            "at 1 (norm.clamp(1e-12, 1), clamp(max=1) or torch.minimum(norm, 1)); bound the norm from below only: "
            "x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)"
        )
    if rows.numel() > 0 and bool((rows <= 1 + NORM_TOL).all()):
        if 0.05 < float(unit.double().mean()) < 0.95 and float(rows[~unit].max()) < 1 - NORM_TOL:
            return "norm_clamped_at_one", (
                "examples whose norm was above 1 are unit, the others kept their norm: the norm was clamped at 1 "
                "(clamp(min=1)); clamp it at a tiny value instead, norm.clamp_min(1e-12)"
            )
        if (floor := unscaled_small_rows(rows, unit)) is not None:
            return floor
        if float(rows.median()) > 0.9 and not bool(unit.all()):
            return "norm_epsilon", (
                "every example's norm is a little below 1, the more so the smaller its values: an epsilon added to "
                "the norm (x / (norm + eps)) is too large; use x / norm.clamp_min(1e-12)"
            )
    present = x[x > 0]
    if present.numel() > 0 and x.max() <= 1 + NORM_TOL:
        # Un-normalised U[0, 1] values have mean 1/2; normalising *before* masking divides them by the norm of all
        # the features (about sqrt(n_features / 3)), so they are much smaller and every example's norm is below 1.
        mean, tol = present.mean().item(), tolerance(present.numel(), 1 / 12)
        if abs(mean - 0.5) <= tol:
            return "not_normalised", (
                "divide every example by its L2 norm over the features: x / x.norm(dim=-1, keepdim=True)"
            )
        if (row_l2 < 1 - NORM_TOL).all():
            # read-back: normalising before the mask gives every count k of present features E[‖x‖² | k] = k / F
            observed = f"every non-empty example has L2 norm below 1 (median {float(rows.median()):.3g})"
            matched, evidence = normalised_before_mask(x, tolerance)
            if matched:
                return "normalised_before_mask", (
                    f"{observed}, and an example with k of the {x.shape[-1]} features present has squared norm "
                    f"k / {x.shape[-1]} on average ({evidence}), as U[0, 1] values divided by the norm of all the "
                    "features give: you normalised before applying the mask, so the norm included the features the "
                    "mask then zeroed: mask first, then divide by the norm of what is left"
                )
            k, c = (x > 0).sum(-1, keepdim=True).double().clamp_min(1), "the count of present features"
            for div, said in ((k, c), (k.sqrt(), f"the square root of {c}")):
                raw = (x.double() * div)[x > 0]  # U[0, 1] values again if that was the divisor
                if float(raw.max()) <= 1 + NORM_TOL and abs(float(raw.mean()) - 0.5) <= tol:
                    return "norm_below_one", (
                        f"{observed}; the present values average {mean:.3g}{_norm_by_count(x)}: times {said} they "
                        f"are U[0, 1] values again, so the divisor was {said}, not the L2 norm; divide each example "
                        "by its own L2 norm over the features: x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)"
                    )
            return "norm_below_one", (
                f"{observed}; the present values average {mean:.3g}{_norm_by_count(x)}. Not the count of present "
                "features or its square root as the divisor, nor normalising before the mask: those would give "
                "other values; divide each example by its own L2 norm over the features: "
                "x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)"
            )
    if common := common_divisor_diagnosis(x, FAILURE_PROBABILITY / GEN_TESTS) or summary_divisor_diagnosis(x):
        return common
    rows = row_l2[nonzero]
    seen = f"from {float(rows.min()):.4g} to {float(rows.max()):.4g}" if rows.numel() else "all 0"
    return "not_unit_norm", (
        f"the non-empty examples' L2 norms over the features range {seen} (median "
        f"{float(rows.median()) if rows.numel() else 0.0:.4g}), not 1 each; a sum, a max, a norm over other axes, a "
        "squared norm or an RMS as the divisor would give other values; each example is divided by its own L2 norm "
        "over the features: x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)"
    )


def _norm_by_count(x: Tensor) -> str:
    """The mean L2 norm of the examples with k present features, for each k held by at least 20 examples: how the
    norm depends on the count tells a divisor that is a function of the count (sqrt(k) leaves it flat near 0.577)."""
    norms, counts = x.double().norm(dim=-1).flatten(), (x > 0).sum(-1).flatten()
    parts = [
        f"{k} → {float(norms[counts == k].mean()):.3g}"
        for k in range(1, x.shape[-1] + 1)
        if int((counts == k).sum()) >= 20
    ]
    return f"; mean norm by number of present features: {', '.join(parts[:8])}" if parts else ""


def presence_diagnosis(freq: Tensor, n: int, p: float) -> tuple[str, str]:
    """(code, hint) for presence frequencies freq [inst feats] (each over n examples) that are not p."""
    if bool((freq == 1).all()):
        return "always_present", (
            "no entry of any example is 0: the absent features are not zeroed. Possible causes: the mask added to "
            "the values instead of multiplied (mask + values: present ones in [1, 2], absent ones in [0, 1] before "
            "normalising), no mask applied at all, or a mask that is always true. Absent features are exactly 0: "
            "values * mask, or torch.where(mask, values, 0.0)"
        )
    if bool(((freq == 0) | (freq == 1)).all()):
        return "same_across_examples", (
            "every feature is present in all examples or in none: the presence mask was drawn once and reused "
            "for every example; draw it with shape [n_examples, n_inst, n_features]"
        )
    pooled, n_pooled = freq.mean().item(), n * freq.numel()
    candidates = [
        (1 - p, "presence_inverted", PRESENCE_INVERTED),
        (1.0, "always_present", "every feature is present: the mask is missing (or always true)"),
        (p / 2, "presence_half", "features are present with probability p / 2: is there an extra factor 0.5?"),
        (2 * p, "presence_double", "features are present with probability 2p: compare `rand < p`, not `< 2 * p`"),
        (p * p, "presence_squared", "features are present with probability p²: two masks multiplied?"),
        (
            p * (1 - p),
            "presence_two_draws",
            "features are present with probability p(1 - p): two draws (`rand < p` and `rand > p`) combined?",
        ),
        (1 - p * p, "presence_inverted", "features are present with probability 1 - p²: an inverted mask?"),
        *[
            (
                0.5 * (1 + math.erf(sign * p / math.sqrt(2))),
                "presence_normal",
                f"features are present at Φ({sign * p:g}) = {0.5 * (1 + math.erf(sign * p / math.sqrt(2))):.2%}, the "
                f"rate of a standard normal draw compared with p: is the mask `torch.randn(...) {op} p`? Draw it "
                "uniform, torch.rand(...) < p, which is true with probability p",
            )
            for sign, op in ((1, "<"), (-1, ">"))
        ],
    ]
    candidates.append(
        (
            0.5,
            "presence_half_fixed",
            "features are present half of the time whatever feature_probability is: randint(0, 2) or "
            "bernoulli(0.5)? compare `torch.rand(shape) < feature_probability`",
        )
    )
    for value, code, hint in candidates:
        if abs(pooled - value) <= tolerance(n_pooled, value * (1 - value)):
            return code, hint
    # A rate that depends on the instance (or on the feature): compare each row (column) pooled with the others.
    for axis, name in ((1, "instance"), (0, "feature")):
        rates = freq.mean(axis)
        n_each = n * freq.shape[axis]
        tol = tolerance(n_each, 0.25)  # p(1 - p) <= 1/4
        if float(rates.max() - rates.min()) > 2 * tol:
            shown = ", ".join(f"{r:.1%}" for r in rates.tolist()[:6])
            return "presence_varies", (
                f"the presence rate differs from one {name} to the next ({shown}...): every feature of every "
                "instance is present with the same probability feature_probability"
            )
    return rate_readback(pooled, p, lambda rate: tolerance(n_pooled, rate * (1 - rate)))


def cooccurrence(present: Tensor) -> tuple[float, int]:
    """Mean over (example, inst) rows of k(k-1) / (F(F-1)), k = features present: P(two given features both on)."""
    k = present.double().sum(-1)
    F = present.shape[-1]
    return float((k * (k - 1)).mean() / (F * (F - 1))), k.numel()


def shared_values(xa: Tensor, xb: Tensor) -> float:
    """The share of row pairs (a, b) with >= 2 features present in both whose values are proportional.

    If values were drawn once and reused (for both rows), x_a / x_b is the same for every feature present in
    both (normalising only rescales a row); with independent draws that never happens. Rows: [..., feats].
    """
    both = (xa > 0) & (xb > 0)
    usable = both.sum(-1) >= 2
    if not usable.any():
        return 0.0
    ratio = torch.where(both, xa / xb.clamp_min(1e-300), torch.nan)[usable]
    hi = torch.where(ratio.isnan(), -math.inf, ratio).amax(-1)
    lo = torch.where(ratio.isnan(), math.inf, ratio).amin(-1)
    return float(((hi - lo) <= 1e-4 * hi).double().mean())


# Value distributions: the statistic is the ratio of each present value to the largest value of its example
# (all but the largest, in examples with at least two present). Normalising rescales an example, so the
# statistic is the same before and after it; for U[0, 1] values it is a sample of U[0, 1].
def ratio_sample(x: Tensor) -> Tensor:
    present = x > 0
    row_max = x.amax(-1, keepdim=True)
    ratios = torch.where(present, x / row_max.clamp_min(1e-300), 0.0)
    is_max = torch.zeros_like(present)
    is_max.scatter_(-1, x.argmax(-1, keepdim=True), True)
    return ratios[present & ~is_max]


def value_candidates(shape: tuple[int, ...], p: float) -> list[tuple[str, str, Tensor]]:
    """(code, hint, ratio sample) of the usual wrong value distributions, drawn with a fixed generator."""
    g = torch.Generator().manual_seed(0)
    mask = torch.rand(shape, generator=g, dtype=torch.float64) < p

    def sample(values: Tensor) -> Tensor:
        return ratio_sample(torch.where(mask, values, 0.0))

    u = torch.rand(shape, generator=g, dtype=torch.float64)
    return [
        (
            "normal_values",
            "the values look like |N(0, 1)| draws: use torch.rand (uniform on [0, 1]), not randn",
            sample(torch.randn(shape, generator=g, dtype=torch.float64).abs()),
        ),
        (
            "reused_draw",
            "the values look like U[1 - p, 1]: the presence draw was reused as the value (`u > 1 - p` keeps "
            "only large u); draw the value separately with torch.rand",
            sample(1 - p * u),
        ),
        (
            "squared_values",
            "the values look like a product or square of uniforms: each present value is one torch.rand draw",
            sample(u * torch.rand(shape, generator=g, dtype=torch.float64)),
        ),
    ]


def transformed_failure(out: Tensor, data: Tensor) -> None:
    """Name an output that is a function of the training set: the same features present, other values.

    A redrawn data set (p = 0.1, 6000 entries) essentially never has the same zero pattern, so a matching pattern
    means self.train_data was transformed; the axes along which out / train_data is constant say how.
    """
    got, d = out.detach().double().cpu(), data.double().cpu()
    if not torch.equal(got != 0, d != 0):
        return
    present = d != 0
    ratio = torch.where(present, got / torch.where(present, d, 1.0), torch.nan)
    names = ("examples", "inst", "feats")
    constant = []
    for axis, name in enumerate(names):
        lo = torch.where(ratio.isnan(), math.inf, ratio).amin(axis, keepdim=True)
        hi = torch.where(ratio.isnan(), -math.inf, ratio).amax(axis, keepdim=True)
        spread = torch.where(present.any(axis, keepdim=True), hi - lo, 0.0)
        if bool((spread.abs() <= 1e-5 * hi.abs().clamp_min(1e-12)).all()):
            constant.append(name)
    if len(constant) == len(names):
        how = f"your output is self.train_data times {float(ratio.nanmean()):.4g}: a constant factor"
    elif constant:
        how = (
            f"your output / self.train_data is the same along `{'` and `'.join(constant)}`: the training set "
            f"multiplied or divided by something computed over {' and '.join(constant)} (a normalisation, e.g. "
            "F.normalize or x / x.norm(dim=...), over that axis?)"
        )
    elif seen := present_values_reading(got, d):
        how = seen
    else:
        how = "the training set transformed elementwise (a power, an abs, a clamp?)"
    fail(
        "generate_batch returned the training set's present features, but with other values",
        f"{how}. self.train_data is already normalised: return it unchanged",
        code="transformed",
    )


def swapped_arguments(schedule: Callable, steps: int, warmup: int) -> list[tuple[str, str, Tensor]]:
    """The schedule with `steps` and `warmup_steps` exchanged (parameters declared in another order)."""
    try:
        swapped = [schedule(s, warmup, steps) for s in range(steps)]
    except ZeroDivisionError:
        return []
    return [
        (
            "arguments_swapped",
            f"your schedule is the right one for steps = {warmup} and warmup_steps = {steps}: the two are exchanged "
            "(parameters declared in another order?); the signature is warmup_cosine_lr(step, steps, warmup_steps)",
            torch.tensor(swapped, dtype=torch.float64),
        )
    ]


def warmup_ramp_diagnosis(got: Tensor, steps: int, warmup: int) -> tuple[str, str] | None:
    """(code, hint) when the warm-up steps 1 .. warmup - 1 follow step / W for another length W (warmup_steps read
    as a fraction of the run: W = warmup_steps · steps), or (step / warmup_steps)^k with k != 1."""
    if min(warmup, steps) < 4:
        return None
    s = torch.arange(1, min(warmup, steps), dtype=torch.float64)
    v = got[1 : len(s) + 1].double()
    if len(s) < 3 or not bool(((v > 0) & (v < 1)).all()):
        return None
    length = s / v
    if bool(((length - length[0]).abs() <= 1e-6 * length[0]).all()) and abs(float(length[0]) - warmup) > 1e-6:
        W = float(length[0])
        why = (
            f" = warmup_steps · steps ({warmup} · {steps}): warmup_steps was read as a fraction of the run; it is "
            "already a number of steps"
            if abs(W - warmup * steps) < 1e-6 * W
            else ""
        )
        return "warmup_length", (
            f"your warm-up is linear but reaches 1 only after {W:g} steps{why}; it should reach 1 at step "
            f"warmup_steps = {warmup}: step / warmup_steps"
        )
    power = v.log() / (s / warmup).log()
    if bool(((power - power[0]).abs() <= 1e-6 * power[0].abs()).all()) and abs(float(power[0]) - 1) > 1e-3:
        k = float(power[0])
        name = {2.0: " (quadratic)", 0.5: " (a square root)", 3.0: " (cubic)"}.get(round(k * 4) / 4, "")
        return "warmup_shape", (
            f"your warm-up is (step / warmup_steps)^{k:.3g}{name}, not linear: the learning rate rises as "
            "step / warmup_steps, then follows the cosine"
        )
    return None


def same(a: Tensor, b: Tensor) -> bool:
    """Equal up to float rounding (a normalised copy of the unit-norm data, F.normalize(..), is the data)."""
    if a.shape != b.shape:
        return False
    return bool(torch.allclose(a.detach().double(), b.detach().double(), rtol=1e-5, atol=1e-6))
