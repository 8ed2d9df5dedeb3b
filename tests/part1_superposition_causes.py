"""Statistics of parts 1 and 2 that name the cause of a wrong draw, rather than only saying that it is wrong.

* Rates that are a known law of p other than p itself: presence drawn from another distribution than rand() < p
  (|randn| < p gives erf(p/√2), Poisson(p) > 0 gives 1 - e^-p, rand() ** 2 < p gives √p); rates that only rise with p
  list those causes.
* The pooled presence rate of successive chunks of the batch: a probability table laid out along the batch axis
  (p.flatten().repeat_interleave(n)) cycles every cell through all of p, so each cell's overall rate is p.mean() while
  the chunks differ.
* Within one cell, the present values' mean per number of present features in the example: values normalised per
  example (divided by that count, or by the values' sum) shrink as more features are present.
* An anticorrelated choice that never varies (a constant coin: torch.randint(0, 1) is always 0) against one that is
  drawn per pair but shared by the batch, told apart by the sides chosen across pairs and across fresh calls.
* Per block of the combined batch: a pair's rate that is a combination of its two features' p (product, mean, ...).

Each test fails a correct answer with probability below DELTA per statistic; the namings run after a failure.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from tests import part1_superposition_value_order as value_order
from tests.checking import bernstein_tolerance, fail
from tests.part1_superposition_probes import DELTA, consistent, rate_pattern_diagnosis, rate_tolerance
from tests.part1_superposition_reorders import reordered_diagnosis
from tests.part1_superposition_slips import borrowed_rates

RATE_LAWS = (
    ("erf(p/√2) = P(|N(0, 1)| < p)", "|randn| < p (a half-normal draw)", lambda p: torch.erf(p / math.sqrt(2))),
    ("1 - e^-p = P(Poisson(p) > 0)", "Poisson(p) > 0 or an exponential draw below p", lambda p: 1 - torch.exp(-p)),
    ("√p", "rand() ** 2 < p or rand() < p ** 0.5", torch.sqrt),
    ("1 - (1 - p/2)² = p - p²/4", "(rand() < p / 2) | (rand() < p / 2), either of two draws", lambda p: p - p**2 / 4),
)
LAW_CAUSES = "; ".join(f"{how} gives {label}" for label, how, _ in RATE_LAWS) + "; randn < p gives Φ(p)"


def _law_diagnosis(observed: Tensor, p: Tensor, n: int) -> tuple[str, str] | None:
    """The rates follow another law of p. Below p ≈ 1/2 the half-normal law erf(p/√2) is close to 0.8·p, so a rate
    scaled by a constant (1.5p where 2p belongs, halved by a fair coin: 0.75·p) can fit it too: then both are named."""
    x, y = p.flatten().double(), observed.flatten().double()
    k = float((x * y).sum() / (x * x).sum()) if float((x * x).sum()) > 0 else 1.0
    scaled = abs(k - 1) > 0.05 and consistent(observed, (k * p).clamp(0, 1), n)
    for label, how, law in RATE_LAWS:
        table = law(p)
        if consistent(observed, table, n) and not consistent(p, table, n):
            if scaled:
                return "presence_law", (
                    f"the rates fit two readings: every rate is about {k:.2g}·p, p (or a rate built from it, such as "
                    f"a pair's 2p) multiplied by a constant before the draw; or they are {label}, as {how} gives. "
                    "Draw presence as torch.rand(...) < p, with the probability the exercise states"
                )
            return "presence_law", (
                f"the rates are {label}, not p: presence is not drawn as rand() < p but from another distribution "
                f"— {how} gives these rates; draw it as torch.rand(...) < p, a uniform draw compared with p"
            )
    return None


def _capped_diagnosis(observed: Tensor, expected: Tensor, n: int) -> tuple[str, str] | None:
    """The rates follow the right table up to some value c and are flat at c above it: min(expected, c). c is read
    off as the mean observed rate of the cells that are low; every cell must then match min(expected, c)."""
    low = (expected - observed) > rate_tolerance(n, expected)
    if not bool(low.any()) or bool(low.all()):
        return None
    c = float(observed[low].mean())
    capped = expected.clamp(max=c)
    if not consistent(observed, capped, n) or consistent(observed, expected, n):
        return None
    return "rate_capped", (
        f"the rates equal the right ones up to {c:.1%} and stay flat at {c:.1%} for every cell whose rate should be "
        "higher: a rate capped at a constant (a clamp(max=...) or min(...) on the probability, such as "
        "(2p).clamp(max=0.5) for a pair's activity rate 2p). Possible causes: a bound meant for p (such as "
        "p <= 1/2) applied to a "
        "derived rate; draw with the probability itself, uncapped"
    )


def _rises_with_p(observed: Tensor, p: Tensor, n: int) -> bool:
    """Every cell with a larger p has a rate at least as large (within tolerance): the rates are an increasing
    function of p."""
    o, q = observed.flatten(), p.flatten()
    tol = rate_tolerance(n, o.clamp(0, 1))
    larger = q[:, None] > q[None, :]
    return bool(((o[:, None] + tol[:, None] >= o[None, :] - tol[None, :]) | ~larger).all()) and float(q.var()) > 0


def _edge_never_diagnosis(observed: Tensor, expected: Tensor, n: int, unit: str) -> tuple[str, str] | None:
    """The last (or first) few units are never present in any instance, though p says they should be, while every
    other unit has its right rate: those units are never drawn (a loop or slice that stops one short)."""
    never = (observed == 0).all(0) & (expected > rate_tolerance(n, expected)).any(0)
    m = observed.shape[1]
    if not bool(never.any()) or bool(never.all()):
        return None
    idx = [int(j) for j in never.nonzero().flatten()]
    rest = ~never
    if not consistent(observed[:, rest], expected[:, rest], n):
        return None
    count = len(idx)
    if idx == list(range(m - count, m)):
        which, how = "last", f"a loop over range(n - {count}) where range(n) was meant, or a slice ending at -{count}"
    elif idx == list(range(count)):
        which, how = "first", f"a loop over range({count}, n) where range(n) was meant, or a slice from {count}"
    else:
        return None
    units = f"{unit}{'s' if count > 1 else ''} {', '.join(map(str, idx))}"
    return "edge_never_drawn", (
        f"the {which} {units} {'are' if count > 1 else 'is'} never present in any instance, while every other "
        f"{unit} has its right rate: the {which} {unit}{'s are' if count > 1 else ' is'} never drawn. An "
        f"off-by-one in a loop or slice over the {unit}s ({how}?): cover all {m} of them, or draw them all at once "
        "without a loop"
    )


def _instance_never_diagnosis(observed: Tensor, expected: Tensor, n: int) -> tuple[str, str] | None:
    """A whole instance (every unit) is never present, though p says it should be, while every other instance has
    its right rates: that instance is left empty (a loop over the instances that stops one short)."""
    never = (observed == 0).all(1) & (expected > rate_tolerance(n, expected)).any(1)
    if not bool(never.any()) or bool(never.all()) or not consistent(observed[~never], expected[~never], n):
        return None
    idx = [int(i) for i in never.nonzero().flatten()]
    k = observed.shape[0]
    loop = {
        tuple(range(k - len(idx), k)): f"a loop over range(n_inst - {len(idx)}) where range(n_inst) was meant?",
        tuple(range(len(idx))): f"a loop over range({len(idx)}, n_inst) where range(n_inst) was meant?",
    }.get(tuple(idx), "a loop over the instances that skips some?")
    return "instance_never_drawn", (
        f"instance {', '.join(map(str, idx))} is never present for any feature (its rows are all zero), while every "
        f"other instance has its right rates: an instance left empty, e.g. {loop} Cover all {k} instances, or draw "
        "them all at once without a loop"
    )


def rounded_rates(observed: Tensor, expected: Tensor, n: int) -> tuple[str, str] | None:
    """The rates are p rounded (to the nearest, or down) to 1 or 2 decimals before the draw: read back on every cell."""
    p, p32 = expected.double(), expected.float()  # rounded in float32, as the learner's tensors are
    for d in (1, 2):
        for how, table in (
            (f"p.round(decimals={d})", p32.round(decimals=d).double()),
            (f"p rounded down, (p * {10**d}).floor() / {10**d}", ((p32 * 10**d).floor() / 10**d).double()),
        ):
            if consistent(observed, table, n) and not consistent(observed, p, n):
                low = int(p.flatten().argmin())
                return "presence_rounded", (
                    f"every rate is p rounded to {d} decimal{'s' * (d > 1)} (read back on all cells: p = "
                    f"{float(p.flatten()[low]):.4g} gives {float(table.flatten()[low]):.4g}): p is rounded before the "
                    f"draw ({how}, or a rounded copy of the probabilities); compare torch.rand(...) with p as it is"
                )
    return None


def rate_causes(
    observed: Tensor, expected: Tensor, n: int, unit: str, default_hint: str | None
) -> tuple[str, str] | None:
    """(code, hint) naming why the rates `observed` [inst units] are not `expected`, after the candidate tables."""
    found = (
        rounded_rates(observed, expected, n)
        or _edge_never_diagnosis(observed, expected, n, unit)
        or _instance_never_diagnosis(observed, expected, n)
        or _law_diagnosis(observed, expected, n)
        or _capped_diagnosis(observed, expected, n)
        or reordered_diagnosis(observed, expected, n, unit)
        or rate_pattern_diagnosis(observed, expected, n, unit)
        or borrowed_rates(observed, expected, n, unit)
    )
    if found or default_hint is not None or not _rises_with_p(observed, expected, n):
        return found
    return "presence_law", (
        "the rates rise with p but are not p: presence is not drawn as rand() < p. Possible causes: a draw from "
        f"another distribution compared with p ({LAW_CAUSES}), or p transformed by an increasing function before "
        "the draw; compare torch.rand(...) itself with p"
    )


def pooled_drift_failure(present: Tensor, p: Tensor, what: str, chunks: int = 8) -> None:
    """The presence rate pooled over every cell is the same in each of `chunks` successive chunks of the batch. Each
    chunk's pooled rate over m = (n // chunks) · cells independent draws is within rate_tolerance(m, 1/2) of its
    expected value (a variance of 1/4 bounds any rate's), and so is the whole batch's over chunks · m draws; a correct
    draw has one expected value for all of them, whatever p."""
    if not isinstance(present, Tensor) or present.ndim != 3 or tuple(present.shape[1:]) != tuple(p.shape):
        return
    size = present.shape[0] // chunks
    if size < 100:
        return
    rates = present[: size * chunks].double().reshape(chunks, -1).mean(1).cpu()
    overall = float(rates.mean())
    tol = float(rate_tolerance(size * p.numel(), 0.5) + rate_tolerance(chunks * size * p.numel(), 0.5))
    if bool(((rates - overall).abs() <= tol).all()):
        return
    seen = ", ".join(f"{float(r):.1%}" for r in rates)
    fail(
        f"{what}: presence pooled over all cells changes along the batch: in {chunks} successive chunks of "
        f"{size} examples it is {seen}; a draw that does not depend on the batch index keeps it at one value "
        f"(here {overall:.1%} ± {tol:.1%})",
        "the probability a cell follows depends on its batch index: p's layout is scrambled over the batch axis "
        "(p.flatten().repeat_interleave(n) or p.repeat_interleave(n, 0) viewed as [n, ...]?), so each cell cycles "
        "through all of p and its overall rate looks like p.mean(); broadcast p [inst, ...] over a new leading "
        "batch axis instead (rand(n, *p.shape) < p)",
        code="batch_layout",
    )


def per_example_values_failure(batch: Tensor, present: Tensor, what: str, low: float, high: float) -> None:
    """Within each cell, the present values' mean |value| is the same whatever the number k of present features of
    its (example, inst): independent values don't depend on the others. Each (cell, k) mean with at least 200 values
    is within a Bernstein tolerance (range R = max(|low|, |high|), variance <= R²/4) of its true mean, and so is the
    cell's pooled mean."""
    if present.shape != batch.shape or present.ndim != 3:
        return
    big = max(abs(low), abs(high))
    k = present.sum(-1, keepdim=True).expand_as(present)
    values = batch.abs().double()
    tol = lambda m: bernstein_tolerance(m, big * big / 4, big, DELTA)
    by_count: dict[int, list[float]] = {}  # count -> [sum, number] of the values with that many present
    worst = None
    for i, j in present.sum(0).nonzero().tolist():
        mask = present[:, i, j]
        cell, counts = values[:, i, j][mask], k[:, i, j][mask]
        if cell.numel() < 200:
            continue
        mean = float(cell.mean())
        for c in counts.unique().tolist():
            group = cell[counts == c]
            if group.numel() < 200:
                continue
            total = by_count.setdefault(int(c), [0.0, 0])
            total[0], total[1] = total[0] + float(group.sum()), total[1] + group.numel()
            excess = abs(float(group.mean()) - mean) - tol(group.numel()) - tol(cell.numel())
            if excess > 0 and (worst is None or excess > worst[0]):
                worst = (excess, i, j)
    if worst is None:
        return
    means = {c: v[0] / v[1] for c, v in sorted(by_count.items())}
    word = "value" if low >= 0 else "|value|"
    seen = ", ".join(f"{m:.3f} with {c} present" for c, m in means.items())
    message = (
        f"{what}: the mean present {word} of inst {worst[1]}, feature {worst[2]} depends on how many features of its "
        f"example are present (all cells: {seen}); independent values have the same mean whatever that count"
    )
    lone = means.get(1)
    scaled = lone is not None and all(
        abs(c * m - lone) <= c * tol(by_count[c][1]) + tol(by_count[1][1]) for c, m in means.items()
    )
    mid = (abs(low) + abs(high)) / 2 if low >= 0 else big / 2
    if scaled and abs(lone - mid) <= tol(by_count[1][1]):
        fail(
            message,
            "the values are divided by the number of present features of their example (x / present.sum(-1)): "
            "each present value is drawn from its own law whatever else is present; don't normalise per example",
            code="values_per_present_count",
        )
    fail(
        message,
        "the values are normalised per example"
        + (" (a lone present value is always about " + f"{lone:.3g}: x / x.sum(-1)?)" if scaled else "")
        + ": possible causes: a division by the number of present features, by the values' sum, norm or max. Each "
        "present value is drawn on its own, whatever else is present; don't normalise per example",
        code="values_normalised_per_example",
    )


def constant_choice_failure(present: Tensor, what: str, redraw: Callable[[], object], calls: int = 24) -> None:
    """Called when in every anticorrelated pair one feature is never present and the other is present whenever the
    pair is active: the choice of feature does not vary across the batch. If the side chosen differs between pairs
    or instances, the choice is drawn per pair but shared by the batch; if it is the same everywhere and in `calls`
    fresh calls (a coin drawn once per call keeps one side through all of them with probability 2^(1 - calls)),
    the coin is constant."""
    side = present[..., 1::2].any(0)  # True where the second feature is the one on
    if bool((side != side.flatten()[0]).any()):
        fail(
            f"{what}: in every pair one feature is never present and the other is present whenever the pair is "
            "active, and which one differs between pairs",
            "the draw that picks which feature of a pair is on is made once for the whole batch: draw it per "
            "example, with the shape [batch, inst, pairs]",
            code="choice_shared_over_batch",
        )
    on = "second" if bool(side.flatten()[0]) else "first"
    for _ in range(calls):
        try:
            out = redraw()
        except Exception:  # a fresh call that fails tells nothing about the coin
            break
        if isinstance(out, Tensor) and out.shape[1:] == present.shape[1:]:
            flips = (out.detach().cpu() != 0)[..., slice(0 if on == "second" else 1, None, 2)]
            if bool(flips.any()):
                fail(
                    f"{what}: within one call the {on} feature of every pair is the one on, but other calls pick "
                    "the other feature",
                    "the choice of feature is one draw per call, shared by the whole batch and every pair (a "
                    "Python random.random() or a 0-d torch.rand(())): draw it with the shape [batch, inst, pairs]",
                    code="choice_shared_over_batch",
                )
    fail(
        f"{what}: in every pair of every instance, and in {calls} more calls, the {on} feature is the one present "
        "whenever the pair is active; the other never is",
        f"the coin that picks which feature is on is constant (always the {on}): possible causes: "
        "torch.randint(0, 1, ...) is always 0 (randint's upper bound is exclusive: randint(0, 2, ...)), a "
        "comparison that always or never holds (rand < 1, rand > 1, rand < 0), or a coin fixed in the code; "
        "draw a fair coin per example, rand(batch, inst, pairs) < 0.5",
        code="choice_constant",
    )


PAIR_COMBINATIONS = (
    ("the product p[2j] · p[2j + 1] of its two features' p", lambda a, b: a * b),
    ("the mean of its two features' p", lambda a, b: (a + b) / 2),
    ("the larger of its two features' p", torch.maximum),
    ("the smaller of its two features' p", torch.minimum),
    ("1 - (1 - p[2j])(1 - p[2j + 1]), either of its two features' p", lambda a, b: 1 - (1 - a) * (1 - b)),
    ("the p of its second feature, p[2j + 1]", lambda a, b: b),
)


def block_rate_notes(rates: Tensor, right: Tensor, p: Tensor, blocks: dict, n: int) -> str:
    """The default hint of the combined batch's rates: each block with wrong rates, what its rates are if a factor
    or a combination of each pair's two probabilities accounts for them, and the slice it should get."""
    wrong = []
    for name, (a, b, code) in blocks.items():
        got, want = rates[:, a:b], right[:, a:b].double()
        if consistent(got, want, n):
            continue
        if bool((got >= 1 - 1 / n).all()):
            wrong.append(
                f"the {name} block (features {a}-{b - 1}) is present in every example: no presence mask was drawn "
                f"(values from torch.rand alone?); draw its presence with rand < {code}"
            )
            continue
        k = float((got * want).sum() / (want * want).sum())
        note = f" (its rates are {k:.2g} × the right ones: a factor on p?)" if consistent(got, k * want, n) else ""
        if name != "uncorrelated":
            pa, pb = p[:, a:b:2].double(), p[:, a + 1 : b : 2].double()
            for label, combine in PAIR_COMBINATIONS:
                table = combine(pa, pb).repeat_interleave(2, 1)
                table = table.clamp(max=0.5) if name == "anticorrelated" else table
                if consistent(got, table, n):
                    note = f" (each pair's rate is {label}: a pair uses the p of its first feature, p[2j], alone)"
                    break
        wrong.append(f"the {name} block (features {a}-{b - 1}) has the wrong rates{note}: give it {code}")
    return "; ".join(wrong) + " (pair j of a block uses the probability of the block's feature 2j)"


def pair_value_correlation_failure(batch: Tensor, present: Tensor, message: str) -> None:
    """Values ordered along the features (value_order), else values of adjacent features correlated where both are
    present: the second derived from the first. Under independence the sample correlation has standard deviation
    1/sqrt(m); 6 of them is the bar. Features 2j and 2j + 1 are called a pair only where they share presence (a
    correlated block); in a batch of independent features (no pairs) the hint doesn't talk about pairs."""
    value_order.value_order_failure(batch, present, message)
    # Centred within each (inst, feature) cell: cells whose means differ (a per-cell law) pooled over the instances
    # correlate without any tie between the two draws (Simpson's effect), so only within-cell co-variation counts.
    counts = present.sum(0).double().clamp_min(1)
    centred = batch.double() - torch.where(present, batch, 0.0).double().sum(0) / counts
    for j in range(batch.shape[-1] // 2):
        both = present[..., 2 * j] & present[..., 2 * j + 1]
        m = int(both.sum())
        if m < 200:
            continue
        x, y = centred[..., 2 * j][both], centred[..., 2 * j + 1][both]
        r = float((x * y).sum() / ((x * x).sum() * (y * y).sum()).sqrt().clamp_min(1e-300))
        if abs(r) > 6 / m**0.5:
            either = present[..., 2 * j] | present[..., 2 * j + 1]
            paired = float(both.sum()) >= 0.99 * float(either.sum())  # the two share presence: a correlated pair
            fail(
                message + f"; where features {2 * j} and {2 * j + 1} are both present their values correlate "
                f"(r = {r:.2f})",
                "the two values of a pair are tied: the second value derived from the first (a product or function "
                "of it)? Each value needs its own independent uniform draw; only presence is shared in a pair"
                if paired
                else f"the values of features {2 * j} and {2 * j + 1} are tied (each feature should have its own "
                "independent draw). Possible causes: one value derived from another's (a product or function of it), "
                "or the values reordered across the feature axis",
                code="values_depend_on_cell",
            )


def constant_values_failure(
    batch: Tensor, present: Tensor, what: str, low: float, high: float, p: Tensor | None
) -> None:
    """Present values that never vary over the batch within a cell (checked on cells present at least 10 times):
    named by what the constants are: equal to p (the presence probability used as the value: nothing drawn), else
    a per-cell table without a batch axis (or a fixed parameter table used as the value)."""
    if present.shape != batch.shape or present.ndim != 3:
        return
    cells = (present.sum(0) >= 10).nonzero().tolist()
    constants = {}
    for a, c in cells:
        cell = batch[:, a, c][present[:, a, c]]
        if not bool((cell == cell[0]).all()):
            return  # some cell varies: the per-cell test of the caller looks at the law
        constants[a, c] = float(cell[0])
    if not constants:
        return
    (a, c), value = next(iter(constants.items()))
    where = f"{what}: inst {a}, feature {c} has the value {value:.3g} in every example where it is present"
    law = f"U[{low:g}, {high:g}]"
    if p is not None and p.shape == batch.shape[1:]:
        table = p.detach().double().cpu()
        if all(
            abs(v - float(table[i, j])) <= 1e-6 * max(1.0, abs(float(table[i, j]))) for (i, j), v in constants.items()
        ):
            fail(
                where + f" (its probability p = {float(table[a, c]):.3g}; every present cell holds its own p)",
                f"the present value equals the feature's probability p: no value was drawn (p used as the value, e.g. "
                f"torch.where(present, p, 0)); draw each present value from {law}",
                code="values_equal_p",
            )
    values = set(constants.values())  # (one value everywhere fails earlier as constant_magnitude)
    fail(
        where + f" (each present cell holds its own fixed value; {len(values)} different values over the cells)",
        "every example needs its own values: the values have no batch axis (drawn with the shape [inst, features] "
        "and broadcast), or a fixed per-feature table (a config parameter such as the importance) was used as the "
        f"value; draw the value tensor with the batch axis, [batch, inst, features], from {law}",
        code="values_shared_over_batch",
    )
