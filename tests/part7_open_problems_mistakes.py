"""The catalogue of known mistakes for section 7's checkers (`tests.part7_open_problems`).

Deterministic exercises: each builder returns what a realistic buggy implementation returns on the checker's
inputs (a mutant of the reference), with the code and hint the checker reports when a learner's output
matches it. The random exercise (`generate_features`): the rates and value distributions that known
mistakes produce, so a failed statistic can be traced to its cause.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from tests.checking import FAILURE_PROBABILITY, bernstein_tolerance
from utils.part7_open_problems import NO_LABEL

# --------------------------------------------------------------------------------------------
# generate_features: what a wrong presence rate or value distribution points to
# --------------------------------------------------------------------------------------------
UNIFORM_KINDS = {"uniform": (0.0, 1.0), "uniform_half": (0.5, 1.0), "signed_uniform": (-1.0, 1.0)}


def draw_code(low: float, high: float) -> str:
    """How U[low, high] is drawn with torch.rand."""
    if low == 0 and high == 1:
        return "torch.rand(shape)"
    width = f"{high - low:g} * " if high - low != 1 else ""
    return f"{low:g} + {width}torch.rand(shape)"


def presence_candidates(p: Tensor) -> list[tuple[str, str, Tensor]]:
    """(code, hint, rate [inst feats]) for the presence rates that known mistakes give; p is [inst feats]."""
    return [
        (
            "rand_gt_p",
            "the rates follow 1 - p: each feature is present exactly where it should be absent (the complement "
            "of the presence mask). Keep a value where rand < p and zero it elsewhere, e.g. values * (rand < p) or "
            "torch.where(rand < p, values, 0)",
            1 - p,
        ),
        (
            "value_zero",
            "the rates look like p/2: half of the features you drew as present got the value 0, so they look "
            "absent. A present feature's value is never 0 (with 'binary' and 'constant' it is exactly 1)",
            p / 2,
        ),
        (
            "first_instance",
            "every instance has the rates of instance 0: compare with the whole `feature_probability` "
            "([inst feats], broadcast against [batch inst feats]), not its first row",
            p[:1].expand_as(p),
        ),
        (
            "first_feature",
            "every feature has the rate of feature 0 of its instance: compare with the whole "
            "`feature_probability`, not one column",
            p[:, :1].expand_as(p),
        ),
        (
            "mean_probability",
            "every feature is present at the same rate (the mean probability): each (instance, feature) has "
            "its own probability `feature_probability[inst, feat]`",
            p.mean().expand_as(p),
        ),
        (
            "instance_mean_probability",
            "every instance has the rates averaged over instances (feature_probability.mean(0)): each instance "
            "keeps its own row",
            p.mean(0, keepdim=True).expand_as(p),
        ),
        (
            "feature_mean_probability",
            "every feature of an instance has the instance's average rate (feature_probability.mean(-1)): each "
            "feature keeps its own probability",
            p.mean(1, keepdim=True).expand_as(p),
        ),
        *[
            (
                "p_misindexed",
                "each (instance, feature) is present at the rate of ANOTHER one: compare the [batch inst feats] random "
                "numbers with feature_probability as it is ([inst feats], broadcast over the batch), without "
                "reordering its axes",
                other,
            )
            for other in (p.flip(0), p.flip(1), p.roll(1, 0), p.roll(1, 1))
        ],
        (
            "p_squared",
            "the rates look like p²: presence decided by two independent draws below p (the mask applied twice "
            "with fresh random numbers?)",
            p**2,
        ),
    ]


def rate_tolerance(n: int, p: Tensor, n_tests: int) -> Tensor:
    """Bernstein tolerance on a frequency from n Bernoulli(p) draws, entrywise (failure prob. 1e-7 / n_tests)."""
    delta = FAILURE_PROBABILITY / n_tests
    return torch.tensor(
        [bernstein_tolerance(n, q * (1 - q), 1.0, delta) for q in p.flatten().tolist()], dtype=torch.float64
    ).reshape(p.shape)


def matching_rate(observed: Tensor, n: int, candidates: list[tuple[str, str, Tensor]], n_tests: int):
    """The (code, hint) of the first candidate whose rate every entry of `observed` is consistent with."""
    for code, hint, rate in candidates:
        rate = rate.double()
        if ((observed.double() - rate).abs() <= rate_tolerance(n, rate, n_tests)).all():
            return code, hint
    return None


# Value distributions a present value is commonly drawn from, by mistake or on purpose: (name, draw, mean, var,
# low, high). A pooled sample of present values is named by the one whose range and first two moments it fits.
def _uniform(low: float, high: float) -> tuple[str, str, float, float, float, float]:
    return f"U[{low:g}, {high:g}]", draw_code(low, high), (low + high) / 2, (high - low) ** 2 / 12, low, high


KNOWN_DISTRIBUTIONS = [
    _uniform(0.0, 1.0),
    _uniform(0.5, 1.0),
    _uniform(-1.0, 1.0),
    _uniform(0.0, 0.5),
    _uniform(0.0, 2.0),
    _uniform(-0.5, 0.5),
    _uniform(-1.0, 0.0),
    _uniform(0.5, 1.5),
    _uniform(1.0, 2.0),
    ("a standard normal", "torch.randn(shape)", 0.0, 1.0, -math.inf, math.inf),
    ("|normal|", "torch.randn(shape).abs()", math.sqrt(2 / math.pi), 1 - 2 / math.pi, 0.0, math.inf),
    ("the constant 1", "torch.ones(shape)", 1.0, 0.0, 1.0, 1.0),
    # The sum or difference of two uniform draws is triangular (peaked in the middle), not uniform.
    (
        "a triangular draw on [-1, 1]",
        "torch.rand(shape) - torch.rand(shape): a difference of two uniforms",
        0.0,
        1 / 6,
        -1.0,
        1.0,
    ),
    (
        "a triangular draw on [0, 1]",
        "(torch.rand(shape) + torch.rand(shape)) / 2: a mean of two uniforms",
        0.5,
        1 / 24,
        0.0,
        1.0,
    ),
]


def name_distribution(values: Tensor, continuous: bool = False) -> tuple[str, str] | None:
    """(name, how it is drawn) of the known distribution a sample of present values looks like, or None.

    The sample has thousands of values: its min and max lie within 1% of a uniform's bounds and its mean and
    variance within a few percent; a normal shows as values beyond ±2.5 with variance near 1. `continuous`: the
    values should come from a continuous draw, so one value held by >= 5% of them (float32 rand has 2^24 values:
    among thousands of draws a value repeats a handful of times at most) is an atom that a clamp/max/where made."""
    if values.numel() < 100:
        return None
    v = values.double()
    if continuous:
        unique, counts = v.unique(return_counts=True)
        top = int(counts.argmax())
        if int(counts[top]) >= max(10, 0.05 * v.numel()):
            a, share = float(unique[top]), float(counts[top]) / v.numel()
            rest = name_distribution(values[v != a]) if 0.3 <= share <= 0.7 else None
            if rest is not None:  # a 0/1 factor in the product, then a shift: b = 0 lands exactly on the shift
                return (
                    f"a draw with {share:.0%} of the values exactly {a:g} and the rest like {rest[0]}",
                    f"a 0/1 factor multiplied into the draw before a shift (operator precedence: rand * "
                    f"randint(0, 2) * 2 - 1 is (rand · b · 2) - 1, so every b = 0 gives exactly {a:g}; put the sign "
                    "in brackets, rand * (randint(0, 2) * 2 - 1), or draw 2 * rand - 1), or a clamp, max or where() "
                    f"that moves values onto {a:g}",
                )
            return (
                f"a draw with {share:.0%} of the values exactly {a:g}",
                f"a clamp, max or where() that moves every value beyond a bound onto {a:g}, instead of rescaling "
                "the draw onto the range",
            )
    lo, hi, mean, var = float(v.min()), float(v.max()), float(v.mean()), float(v.var())
    for name, draw, m, s2, low, high in KNOWN_DISTRIBUTIONS:
        if math.isinf(low) or math.isinf(high):
            in_range = (math.isinf(low) or lo >= low - 1e-6) and (hi > 2.5 or lo < -2.5)
        else:
            in_range = abs(lo - low) < 0.01 * max(high - low, 1) and abs(hi - high) < 0.01 * max(high - low, 1)
        if in_range and abs(mean - m) < 0.03 * max(math.sqrt(s2), 0.1) * 3 and abs(var - s2) < 0.1 * max(s2, 1e-3):
            return name, draw
    return None


# --------------------------------------------------------------------------------------------
# compute_target
# --------------------------------------------------------------------------------------------
def target_mistakes(features: Tensor, target: str) -> list[tuple[str, str, Tensor]]:
    """(code, hint, mutant output) for the known mistakes of one target, on `features`."""
    x = features
    a, b = x[..., 0::2], x[..., 1::2]
    half = x.shape[-1] // 2
    a_split, b_split = x[..., :half], x[..., half:]
    on = lambda t: t != 0
    as_float = lambda t: t.to(x.dtype)
    layout = "pair j is features 2j and 2j+1 (adjacent): features[..., 0::2] and features[..., 1::2]"
    if target == "identity":
        return [
            ("identity_abs", "the identity target is the features themselves, signs included", x.abs()),
            (
                "identity_relu",
                "the identity target keeps negative values too: return the features as they are",
                x.relu(),
            ),
        ]
    if target == "abs":
        return [
            ("abs_relu", "|x| keeps the size of negative values: x.abs(), not relu(x) (which zeroes them)", x.relu()),
            ("abs_square", "that is x²: the 'abs' target is |x|", x**2),
            ("abs_neg_relu", "|x| = relu(x) + relu(-x): both halves are needed", (-x).relu()),
        ]
    if target == "square":
        return [
            ("square_abs", "that is |x|: the 'square' target is x²", x.abs()),
            ("square_signed", "x² is never negative: x ** 2, not x * |x|", x * x.abs()),
            ("square_double", "x² is x * x, not 2 * x", 2 * x),
            ("square_relu", "negative inputs have squares too: x ** 2, not relu(x) ** 2", x.relu() ** 2),
        ]
    if target == "max_pairs":
        return [
            ("pair_layout", layout, torch.maximum(a_split, b_split)),
            (
                "max_abs",
                "max(x, y) of the signed values: torch.maximum(a, b), without abs",
                torch.maximum(a.abs(), b.abs()),
            ),
            ("min_pairs", "that is the minimum of each pair: use torch.maximum", torch.minimum(a, b)),
            (
                "max_pairs_magnitude",
                "your value is whichever member of the pair has the larger |x|, sign kept (where the pair's signs "
                "differ, a large negative member wins): max compares the signed values, torch.maximum(a, b)",
                torch.where(b.abs() > a.abs(), b, a),
            ),
            ("max_sum", "max(x, y) is the larger of the two, not their sum", a + b),
            ("max_first", "compare both members of the pair: max(x_2j, x_2j+1)", a),
            ("mean_pairs", "max(x, y) is the larger of the two, not their mean (x + y) / 2", (a + b) / 2),
            (
                "max_present_only",
                "your max skips an absent member (0): a pair with one absent member and one negative present member "
                "has max 0, the absent one's value, not the negative value; max(x_2j, x_2j+1) compares the values as "
                "they are, torch.maximum(a, b)",
                torch.where(a == 0, b, torch.where(b == 0, a, torch.maximum(a, b))),
            ),
        ]
    if target == "and_pairs":
        return [
            ("pair_layout", layout, as_float(on(a_split) & on(b_split))),
            ("and_is_or", "that is OR: AND is 1 only when both features of the pair are on", as_float(on(a) | on(b))),
            ("and_sum", "AND is 1.0 when both are on, 0.0 otherwise: not the sum of the pair", a + b),
            ("xor", "that is XOR (exactly one on): AND needs both", as_float(on(a) ^ on(b))),
            ("and_first", "AND needs both members of the pair on, not only the first", as_float(on(a))),
        ]
    if target == "or_pairs":
        return [
            ("pair_layout", layout, as_float(on(a_split) | on(b_split))),
            ("or_is_and", "that is AND: OR is 1 when at least one feature of the pair is on", as_float(on(a) & on(b))),
            ("or_sum", "OR is 1 when at least one feature of the pair is on, never 2 (x + y counts both)", a + b),
            ("xor", "that is XOR (exactly one on): OR is also 1 when both are on", as_float(on(a) ^ on(b))),
            ("or_first", "OR looks at both members of the pair, not only the first", as_float(on(a))),
        ]
    if target == "argmax":
        present = on(x).any(-1)
        labels = x.argmax(-1)
        right = torch.where(present, labels, NO_LABEL)
        signed = [  # these coincide with the answer on non-negative features: only listed for signed ones
            (
                "argmax_abs",
                "the label is the index of the largest *signed* value (argmax of x), not of the largest |x|: a "
                "large negative feature is small",
                torch.where(present, x.abs().argmax(-1), NO_LABEL),
            ),
            (
                "argmax_positive_only",
                "NO_LABEL is only for rows with no feature present (all zeros): a row whose features are all "
                "negative still has a largest feature. Test (x != 0).any(-1), not x.max(-1) > 0",
                torch.where(x.amax(-1) > 0, labels, NO_LABEL),
            ),
            (
                "argmax_sum_zero",
                "NO_LABEL is for rows with no feature present, (x != 0).any(-1): signed features can sum to 0 while "
                "some are present",
                torch.where(x.sum(-1) != 0, labels, NO_LABEL),
            ),
            (
                "argmax_negatives_as_zero",
                "your labels differ only on rows whose present features are all negative, where you give 0: the "
                "negative values were read as 0 (a clamp(min=0) / relu before argmax, or a running max started at "
                "0). The largest feature of such a row is its least negative one: argmax of x itself",
                torch.where(present, x.clamp(min=0).argmax(-1), NO_LABEL),
            ),
        ]
        tests = (("x.sum(-1) > 0 (or x.mean(-1) > 0)", x.sum(-1) > 0),)
        signed += [  # "no feature present" tested on a summary of the row: wrong where present values are negative
            (
                "argmax_presence_test",
                f"your rows with no label are those where {expr} fails: that is not 'no feature present' (a row "
                "with negative features, or features that cancel, has features present). Test (x != 0).any(-1)",
                torch.where(test, labels, NO_LABEL),
            )
            for expr, test in tests
            if not any(torch.equal(torch.where(test, labels, NO_LABEL), v) for v in [*(m[2] for m in signed), right])
        ]
        inst_axis = (  # argmax over the instance axis (dim -2), one feature's column read for every instance
            "argmax_instance_axis",
            "your labels are the argmax over the INSTANCE axis (dim -2) of one feature, the same for every instance: "
            "the label is the index of the largest feature, argmax over the last axis (dim -1)",
            torch.where(present, x.argmax(-2, keepdim=True)[..., 0].expand(present.shape), NO_LABEL),
        )
        return [
            inst_axis,
            *(signed if bool((x < 0).any()) else []),
            ("argmax_empty", "argmax of an all-zero row is 0; mark rows with no feature with NO_LABEL = -1", labels),
            (
                "argmin",
                "the label is the index of the LARGEST feature (argmax)",
                torch.where(present, x.argmin(-1), NO_LABEL),
            ),
            (
                "argmax_one_based",
                "labels are 0-based feature indices (argmax's own), with -1 for no feature",
                torch.where(present, labels + 1, NO_LABEL),
            ),
            (
                "argmax_shifted_labels",
                "your labels are the right ones shifted up by one everywhere: feature i labelled i + 1 and "
                f"'no feature' labelled 0 instead of {NO_LABEL} (1-based classes with 0 for none, or labels + 1 "
                f"after NO_LABEL = {NO_LABEL} was applied). Labels are argmax's 0-based indices, and NO_LABEL = "
                f"{NO_LABEL} marks rows with no feature",
                torch.where(present, labels + 1, 0),
            ),
            (
                "argmax_all_present",
                "NO_LABEL marks examples where NO feature is present (.any(-1) is False), not those where some "
                "feature is absent (.all)",
                torch.where(on(x).all(-1), labels, NO_LABEL),
            ),
            (
                "argmax_empty_last",
                "rows with no feature get NO_LABEL = -1 (not the last class)",
                torch.where(present, labels, x.shape[-1] - 1),
            ),
            (
                "argmax_of_presence",
                "that is the first *present* feature (argmax of the presence mask x != 0, where every present "
                "feature ties at 1): the label is the index of the largest *value*, x.argmax(-1)",
                torch.where(present, on(x).to(x.dtype).argmax(-1), NO_LABEL),
            ),
        ]
    return []


# --------------------------------------------------------------------------------------------
# cross_entropy_loss
# --------------------------------------------------------------------------------------------
def cross_entropy_mistakes(logits: Tensor, labels: Tensor, importance: Tensor) -> list[tuple[str, str, Tensor]]:
    """(code, hint, loss) for the known mistakes, on these inputs (each loss a 0-dim tensor)."""
    valid = labels != NO_LABEL
    safe = labels.clamp(min=0)[..., None]
    imp = importance.expand_as(logits)
    weight = imp.gather(-1, safe)[..., 0]
    n_valid = valid.sum(0).clamp(min=1)

    def nll_of(log_probs: Tensor) -> Tensor:
        return -log_probs.gather(-1, safe)[..., 0]

    def total(nll: Tensor, w: Tensor = weight, mask: Tensor = valid, den: Tensor = n_valid) -> Tensor:
        return (torch.where(mask, w * nll, 0.0).sum(0) / den).sum()

    nll = nll_of(logits.log_softmax(-1))
    term = torch.where(valid, weight * nll, 0.0)
    predicted_weight = imp.gather(-1, logits.argmax(-1, keepdim=True))[..., 0]
    mistakes = [
        (
            "softmax_twice",
            "that is the loss of softmax(logits) read as logits: a softmax applied before F.cross_entropy (or "
            "log_softmax), which applies its own. Pass the raw logits",
            total(nll_of(logits.softmax(-1).log_softmax(-1))),
        ),
        (
            "instances",
            "sum the per-instance losses over instances (don't average them)",
            (term.sum(0) / n_valid).mean(),
        ),
        ("importance", "weight each example's loss by importance[inst, label]", total(nll, torch.ones_like(weight))),
        (
            "divided_by_fraction",
            "divide by the NUMBER of labelled examples, valid.sum(0), not by their FRACTION of the batch, "
            "valid.float().mean(0): that multiplies each instance's loss by the batch size",
            total(nll, den=valid.to(logits.dtype).mean(0).clamp(min=1 / labels.shape[0])),
        ),
        (
            "weighted_mean",
            "divide by the number of labelled examples, not by the sum of their weights "
            "(F.cross_entropy's `weight` does the latter)",
            (term.sum(0) / torch.where(valid, weight, 0.0).sum(0).clamp(min=1e-12)).sum(),
        ),
        *[
            (
                "count_off_by_one",
                f"divide by the number of labelled examples itself, not that count {sign} 1 (an off-by-one): to "
                "avoid dividing by zero, clamp the count at 1 (.clamp(min=1)), which changes nothing when it is >= 1",
                total(nll, den=(valid.sum(0) + step).clamp(min=1)),
            )
            for sign, step in (("+", 1), ("-", -1))
        ],
        (
            "count_weighted_only",
            "that is the loss divided by the number of labelled examples whose class has a nonzero importance: an "
            "example with importance 0 adds 0 to the sum but still counts; divide by every labelled example",
            total(nll, den=(valid & (weight != 0)).sum(0).clamp(min=1)),
        ),
        (
            "denominator",
            "average over labelled examples only: divide by how many labels are not NO_LABEL",
            total(nll, den=torch.full_like(n_valid, labels.shape[0])),
        ),
        (
            "no_label",
            "leave NO_LABEL (-1) examples out of the loss; clamping them to class 0 counts them",
            (weight * nll).mean(0).sum(),
        ),
        (
            "softmax_axis",
            "take the softmax over the class (last) axis, not over instances",
            total(nll_of(logits.log_softmax(1))),
        ),
        (
            "instance0_logits",
            "that is the loss with every instance's labels read from instance 0's log-probabilities: the gather index "
            "has the wrong shape (labels.unsqueeze(1) is [batch 1 inst]); gather along the class axis with "
            "labels.unsqueeze(-1), [batch inst 1], so each instance reads its own logits",
            total(nll_of(logits[:, :1].expand_as(logits).log_softmax(-1))),
        ),
        (
            "softmax_batch",
            "take the softmax over the class (last) axis, not over the batch",
            total(nll_of(logits.log_softmax(0))),
        ),
        (
            "no_log",
            "the loss is −log softmax: take the log of the probabilities",
            total(-logits.softmax(-1).gather(-1, safe)[..., 0]),
        ),
        (
            "no_softmax",
            "normalise the logits first: −log softmax(logits)[label] (log_softmax), not −logits[label]",
            total(-logits.gather(-1, safe)[..., 0]),
        ),
        (
            "relu_logits",
            "take log_softmax of the raw logits: a ReLU (or clamp(min=0)) before it reads every negative logit as 0, "
            "which changes the loss wherever a logit is negative",
            total(nll_of(logits.relu().log_softmax(-1))),
        ),
        (
            "global_mean",
            "average within each instance (over its own labelled examples), then sum over instances",
            term.sum() / valid.sum().clamp(min=1),
        ),
        ("sum_examples", "average over the labelled examples of an instance, don't sum them", term.sum()),
        *[
            (
                "class0_dropped",
                "only NO_LABEL (-1) examples are unlabelled: class 0 is a real label, so test labels != NO_LABEL "
                "(labels > 0 drops class 0 too; labels >= 0 keeps it)",
                total(nll, mask=labels > 0, den=den),
            )
            for den in ((labels > 0).sum(0).clamp(min=1), n_valid)
        ],
        (
            "pooled_times_instances",
            "one mean pooled over every instance's labelled examples, times n_inst, is not Σ_k L_k: average within "
            "each instance over its own labelled examples (their counts differ), then sum over instances",
            term.sum() / valid.sum().clamp(min=1) * logits.shape[1],
        ),
        (
            "importance_of_prediction",
            "weight by the importance of the TRUE class (the label), not of the predicted one",
            total(nll, predicted_weight),
        ),
        (
            "importance_on_logits",
            "the importance weights each example's loss (importance[inst, label] · nll), not the logits",
            total(nll_of((logits * importance).log_softmax(-1))),
        ),
        (
            "importance_on_logits",
            "your loss is −log softmax(importance · logits)[label], unweighted: the importance multiplies each "
            "example's loss after the softmax, importance[inst, label] · (−log softmax(logits)[label]), not the logits",
            total(nll_of((logits * importance).log_softmax(-1)), torch.ones_like(weight)),
        ),
        (
            "no_label_counted",
            "leave NO_LABEL (-1) examples out of the sum: clamped to class 0 they still add their loss",
            (
                torch.where(labels == NO_LABEL, imp[..., 0] * nll_of(logits.log_softmax(-1)), term).sum(0) / n_valid
            ).sum(),
        ),
        (
            "importance_first_instance",
            "each instance has its own importance row: importance[inst, label], not importance[0, label]",
            total(nll, importance[0].expand_as(logits).gather(-1, safe)[..., 0]),
        ),
        (
            "importance_mean",
            "weight each example by the importance of its own label, importance[inst, label], not by the instance's "
            "mean importance over classes",
            total(nll, imp.mean(-1)),
        ),
        *[
            (
                "stability_shift_axis",
                "the stability shift of a log-softmax must be one number per example (the max over the classes, "
                f"logits.amax(-1, keepdim=True)): a max over {name} differs from class to class, so the shifted "
                "logits no longer give the same softmax. Or use logits.log_softmax(-1)",
                total(nll_of(shifted - shifted.exp().sum(-1, keepdim=True).log())),
            )
            for name, shifted in (
                ("the batch (dim 0)", logits - logits.amax(0, keepdim=True)),
                ("the instances (dim 1)", logits - logits.amax(1, keepdim=True)),
            )
        ],
        (
            "no_gather",
            "your loss sums importance · (−log softmax) over every class: take only the label's term, "
            "log_softmax(logits).gather(-1, label) weighted by importance[inst, label]",
            total(-(imp * logits.log_softmax(-1)).sum(-1), torch.ones_like(weight)),
        ),
        (
            "log_sigmoid",
            "your loss is −log sigmoid(z_label): a per-class binary probability. The class probability is the "
            "softmax over the classes, −log_softmax(logits)[label] (cross-entropy)",
            total(nll_of(torch.nn.functional.logsigmoid(logits))),
        ),
        (
            "importance_normalised",
            "use importance[inst, label] as given: dividing each instance's importances by their sum (or making "
            "them sum to 1) rescales every instance's loss by another factor",
            total(nll, (imp / imp.sum(-1, keepdim=True)).gather(-1, safe)[..., 0]),
        ),
        (
            "importance_averaged_apart",
            "weight each example's own NLL by its own importance and average the products, mean(w · nll): the mean "
            "importance times the mean NLL, mean(w) · mean(nll), is not the same",
            (
                (torch.where(valid, weight, 0.0).sum(0) / n_valid) * (torch.where(valid, nll, 0.0).sum(0) / n_valid)
            ).sum(),
        ),
    ]
    # one instance alone: reading instance 0's logits is the right answer, not a mistake to name
    return [m for m in mistakes if m[0] != "instance0_logits" or logits.shape[1] > 1]


# --------------------------------------------------------------------------------------------
# basis_alignment
# --------------------------------------------------------------------------------------------
def _centred_alignment(W: Tensor) -> Tensor:
    """The alignment of each column mean-centred over the hidden axis (0 where the centred column is 0)."""
    Wc = W - W.mean(1, keepdim=True)
    norm = Wc.norm(dim=1)
    return torch.where(norm > 0, Wc.abs().amax(1) / norm.clamp(min=1e-12), 0.0)


def alignment_mistakes(W: Tensor) -> list[tuple[str, str, Tensor]]:
    """(code, hint, output) for the known mistakes, with zero columns set to 0 as the exercise asks."""
    norm = W.norm(dim=1)
    safe = norm.clamp(min=1e-12)
    nonzero = norm > 0

    def fixed(value: Tensor) -> Tensor:
        return torch.where(nonzero, value, 0.0)

    return [
        (
            "last_neuron_skipped",
            "your max runs over every neuron but the last (range(d_hidden - 1) or W[:, :-1]): max over all d_hidden",
            fixed(W[:, :-1].abs().amax(1) / safe),
        ),
        (
            "first_neuron_skipped",
            "your max runs over every neuron but the first (range(1, d_hidden) or W[:, 1:]): max over all d_hidden",
            fixed(W[:, 1:].abs().amax(1) / safe),
        ),
        ("abs", "take the absolute value first: a feature on −axis k is aligned too", fixed(W.amax(1) / safe)),
        (
            "abs_after_max",
            "take |W_ki| before the max over neurons: max(W).abs() is the largest *signed* entry, wrong for a feature "
            "whose largest-magnitude entry is negative",
            fixed(W.amax(1).abs() / safe),
        ),
        (
            "signed_at_argmax",
            "your values are right in size but keep the sign of the largest-|W_ki| entry (negative where that entry "
            "is negative): W.gather(1, W.abs().argmax(1)) picks the signed entry. Take the max of |W_ki| itself, "
            "W.abs().amax(1)",
            fixed(W.gather(1, W.abs().argmax(1, keepdim=True))[:, 0] / safe),
        ),
        ("normalise", "divide by the feature's norm ‖Wᵢ‖ so the scale of W doesn't matter", fixed(W.abs().amax(1))),
        (
            "norm_axis",
            "your values are max over neurons of W normalised over the features (dim 2): ‖Wᵢ‖ is the norm over the "
            "hidden axis (dim 1), one per (instance, feature)",
            fixed((W / W.norm(dim=-1, keepdim=True).clamp(min=1e-12)).abs().amax(1)),
        ),
        (
            "norm_axis",
            "your values are max over neurons of W normalised over the instances (dim 0), F.normalize(W, dim=0): "
            "‖Wᵢ‖ is the norm over the hidden axis (dim 1), one per (instance, feature); normalise over dim 1",
            fixed((W / W.norm(dim=0, keepdim=True).clamp(min=1e-12)).abs().amax(1)),
        ),
        (
            "centred",
            "your values are the alignment of each column after subtracting its mean over the neurons "
            "(W − W.mean(1)): the alignment is of W itself, max|W_ki| / ‖Wᵢ‖ with no centring",
            _centred_alignment(W),
        ),
        ("max", "take the largest |W_ki| over neurons k, not the sum", fixed(W.abs().sum(1) / safe)),
        (
            "mean_abs_denominator",
            "your denominator is the mean of |W_ki| over the neurons: divide by the norm ‖Wᵢ‖ = √(Σ_k W_ki²)",
            fixed(W.abs().amax(1) / W.abs().mean(1).clamp(min=1e-12)),
        ),
        *[
            (
                "root_hidden_factor",
                f"your values are {W.shape[1] ** power:.4g} = {'1/' if power < 0 else ''}√d_hidden (√{W.shape[1]}, "
                "the number of neurons) × the expected ones: a normalisation so an evenly spread feature scores 1, "
                "or a root-mean-square where the norm belongs? The ratio is max|W_ki| / ‖Wᵢ‖ as it is",
                fixed(W.abs().amax(1) / safe * W.shape[1] ** power),
            )
            for power in (0.5, -0.5)
        ],
        *[
            (
                "normalised_weights",
                "your values are max over neurons of softmax(|W_ki|) (|W| normalised over the hidden axis by a "
                "softmax): the alignment is max|W_ki| / ‖Wᵢ‖, the largest magnitude divided by the Euclidean norm",
                value,
            )
            for value in (fixed(W.abs().softmax(1).amax(1)), W.abs().softmax(1).amax(1))
        ],
        ("mean", "take the largest |W_ki| over neurons k, not the mean", fixed(W.abs().mean(1) / safe)),
        ("min", "take the LARGEST |W_ki| over neurons k", fixed(W.abs().amin(1) / safe)),
        (
            "l1_norm",
            "divide by the Euclidean norm ‖Wᵢ‖₂, not the sum of |W_ki|",
            fixed(W.abs().amax(1) / W.abs().sum(1).clamp(min=1e-12)),
        ),
        (
            "mean_abs_norm",
            "your denominator is sqrt(d)·mean_k |W_ki| (= Σ_k |W_ki| / sqrt(d)), which equals ‖Wᵢ‖ only when every "
            "|W_ki| is the same: ‖Wᵢ‖ = sqrt(d)·RMS = sqrt(Σ_k W_ki²), the mean of the squares, then the root",
            fixed(W.abs().amax(1) * W.shape[1] ** 0.5 / W.abs().sum(1).clamp(min=1e-12)),
        ),
        ("squared_norm", "divide by the norm ‖Wᵢ‖, not the squared norm ‖Wᵢ‖²", fixed(W.abs().amax(1) / safe**2)),
        *[
            (
                "norm_no_squares",
                f"‖Wᵢ‖ = sqrt(Σ_k W_ki²): square the entries before summing; sqrt(Σ_k {what}) forgets the squares"
                + (" (and is NaN where the sum is negative)" if what == "W_ki" else ""),
                torch.where(s > 0, W.abs().amax(1) / s.clamp(min=1e-12).sqrt(), 0.0),
            )
            for what, s in (("W_ki", W.sum(1)), ("|W_ki|", W.abs().sum(1)))
        ],
        ("squared", "the ratio of max |W_ki| to ‖Wᵢ‖ itself, not of their squares", fixed(W.pow(2).amax(1) / safe**2)),
        (
            "instance_norm",
            "normalise each feature by its own norm, not by the norm of the whole instance's W",
            fixed(W.abs().amax(1) / W.flatten(1).norm(dim=1)[:, None]),
        ),
        (
            "feature_mean_norm",
            "divide each feature by its own norm ‖Wᵢ‖, not by the norm averaged over the instance's features",
            fixed(W.abs().amax(1) / norm.mean(-1, keepdim=True)),
        ),
        (
            "argmax_indices",
            "W.abs().max(dim=1) returns (values, indices): take .values (or use amax), not the indices",
            fixed(W.abs().argmax(1).to(W.dtype) / safe),
        ),
        *[
            (
                "std_not_norm",
                "divide by the Euclidean norm ‖Wᵢ‖ = sqrt(Σ_k W_ki²), not the standard deviation over the neurons "
                "(which subtracts the mean and divides by the count)",
                torch.where(sd > 0, W.abs().amax(1) / sd.clamp(min=1e-12), 0.0),
            )
            for sd in (W.std(dim=1), W.std(dim=1, unbiased=False))
        ],
        (
            "zero_norm",
            "a zero vector has no direction: return 0 for it (torch.where on the norm)",
            torch.where(nonzero, W.abs().amax(1) / safe, 1.0),
        ),
        (
            "where_swapped",
            "your values are 0 for every feature, also where the column is non-zero (only the zero column's 0 is "
            "right). Possible causes: "
            "torch.where's branches swapped (it is torch.where(condition, value_if_true, value_if_false): "
            "torch.where(norm > 0, ratio, 0.0)); its condition inverted (norm == 0 where norm > 0 was meant); or "
            "the ratio multiplied by a mask of the zero columns",
            torch.where(nonzero, 0.0, W.abs().amax(1) / safe),
        ),
    ]
