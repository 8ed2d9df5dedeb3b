"""Checks and diagnoses of parts 1 and 2 about how the random draws are made, and about what a loss reads.

* Every call of a generator draws new data: two calls returning the identical batch means the draws are reseeded
  inside the method (a correct generator repeats a float32 batch of thousands of uniforms with probability 0).
* Absent entries are exactly 0: a batch with no zeros whose every (inst, feature) column repeats one value in a
  large share of its examples sets the absent entries to that value (p, with torch.where(present, values, p)).
* Presence rates that are p except where p is extreme: the probabilities were clamped.
* The value's law per cell: values confined to [-p, p] come from the presence draw reused as the value.
* Signs of signed values are independent across instances and features (a sign drawn per example is shared).
* A loss that gives the same value for two different `out` ignores its argument (it recomputes self(batch)).

The checks here (fresh draws, sign independence) fail a correct answer with probability below DELTA each; the
diagnoses run only after a test has failed, or on facts that no correct answer shows.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from tests.checking import fail
from tests.part1_superposition_causes import pooled_drift_failure, rounded_rates
from tests.part1_superposition_probes import DELTA, consistent, rate_tolerance


def fresh_draws_failure(draw: Callable[[], object], what: str) -> None:
    """Two calls of `draw()` (a generator on the same arguments) must not return the identical tensor."""
    try:
        a, b = draw(), draw()
    except NotImplementedError:
        raise
    except Exception:  # the learner's code failed on the probe: the main check has called it already
        return
    if not (isinstance(a, Tensor) and isinstance(b, Tensor)) or a.shape != b.shape or a.numel() < 100:
        return
    a, b = a.detach().cpu(), b.detach().cpu()
    if bool((a != 0).any()) and torch.equal(a, b):
        fail(
            f"two calls of {what} returned exactly the same batch",
            "every call must draw new random numbers: the draws are reseeded inside the method (torch.manual_seed(...) "
            "at its top, or a torch.Generator().manual_seed(...) created in it), so each call repeats the first "
            "batch and training sees one batch over and over; seed once outside (the notebook does), never inside "
            "the generator",
            code="same_draws_every_call",
        )
    reused_draws_failure(a, b, what)


def constant_cells_failure(
    present: Tensor, p: Tensor, what: str, unit: str = "feature", state: str = "present"
) -> None:
    """Some (inst, unit) cells `state` in every example of the batch and others in none, at rates p that make either
    impossible for independent draws (p^n and (1 - p)^n below DELTA): a draw made once and broadcast over the batch.

    A rate mistake turns rates into other rates, not into 0 for some cells and 1 for others of the same batch, so both
    kinds of constant cell are required before the draw is named."""
    n, p = present.shape[0], p.double().cpu().expand(present.shape[1:])
    on, off = present.all(0).cpu(), (~present).all(0).cpu()
    with torch.no_grad():
        never_all = p.clamp(1e-300, 1).log() * n < math.log(DELTA)  # p^n < DELTA
        never_none = (1 - p).clamp(1e-300, 1).log() * n < math.log(DELTA)  # (1 - p)^n < DELTA
    always, never = on & never_all, off & never_none
    if n < 2 or not bool(always.any()) or not bool(never.any()):
        return
    (i, j), (k, m) = always.nonzero()[0].tolist(), never.nonzero()[0].tolist()
    message = (
        f"{what}: inst {i}, {unit} {j} is {state} in all {n} examples and inst {k}, {unit} {m} in none "
        f"({int(always.sum())} cells always, {int(never.sum())} never; their expected rates are "
        f"{float(p[i, j]):.3g} and {float(p[k, m]):.3g})"
    )
    rounded_p_failure(present, p, message, unit)
    if not bool((on | off).all()):  # a draw shared over the batch leaves no cell varying: these rates were 0 and 1
        return
    rounded = " Or p was rounded (p.round()) before the draw" if torch.equal(on, p > 0.5) else ""
    fail(
        message,
        f"whether a {unit} is {state} is drawn once and shared by the whole batch: the random tensor has no batch axis "
        f"(torch.rand_like(p), or a shape [inst, {unit}s], broadcast against the batch); draw it with the shape "
        f"[batch, inst, {unit}s].{rounded}",
        code="shared_over_batch",
    )


def rounded_p_failure(present: Tensor, p: Tensor, message: str, unit: str = "feature") -> None:
    """Cells always and never present while the others vary: rates at 0 and 1 where p is not, read back as p rounded
    (p = 0.0103 → 0, 0.9887 → 1) before the draw (`causes.rounded_rates`)."""
    if bool(((present.all(0) | (~present).all(0)).cpu()).all()):
        return
    found = rounded_rates(present.double().mean(0).cpu(), p, present.shape[0])
    if found:
        fail(message, found[1], code=found[0])


def reused_draws_failure(a: Tensor, b: Tensor, what: str) -> None:
    """Two calls share their values where both are present (values drawn once, presence redrawn), or share their
    presence while the values differ. Two float32 uniforms are equal with probability about 2^-24, and two presence
    masks of >= 100 entries at rates in (0, 1) agree everywhere with vanishing probability."""
    both = (a != 0) & (b != 0)
    m, same = int(both.sum()), int((a[both] == b[both]).sum())
    if m >= 50 and same > m / 2:
        fail(
            f"two calls of {what}: at the {m} entries present in both batches, {same} have exactly the same value",
            "the values are drawn once and reused (kept on self, or drawn in __init__), and only presence is drawn "
            "again: every call draws new values for its entries (torch.rand inside the method)",
            code="values_reused",
        )
    if bool(((a != 0) != (b != 0)).sum() == 0) and 0 < m < a.numel():
        fail(
            f"two calls of {what} have their nonzero entries at exactly the same places (new values, same presence)",
            "the presence mask is drawn once and reused (kept on self, or drawn in __init__): every call draws a new "
            "presence mask (`rand < p` inside the method)",
            code="presence_reused",
        )


def absent_value_failure(batch: Tensor, what: str, p: Tensor | None = None) -> None:
    """Absent entries must be exactly 0: fail when there are (almost) no zeros and every (inst, unit) column repeats
    one nonzero value in at least 1% of its examples. A continuous float32 draw (2^24 values) repeats a value a
    handful of times in 10^4 draws, never 1% of them; values clamped onto a bound come with zeros for the absent
    entries (and are named by the value checks)."""
    n = batch.shape[0]
    if batch.ndim != 3 or n < 1000 or int((batch == 0).sum()) > 6:
        return
    mode = batch.mode(dim=0).values  # [inst units], the most frequent value of each column
    counts = (batch == mode).sum(0)
    if bool((mode == 0).any()) or bool((counts < 0.01 * n).any()):
        return
    shares = counts.double() / n
    pairs = zip(mode.flatten()[:4].tolist(), shares.flatten()[:4].tolist(), strict=True)
    seen = ", ".join(f"{m:.3g} ({s:.0%})" for m, s in pairs)
    if p is not None and p.shape == mode.shape and torch.allclose(mode.double().cpu(), p.double().cpu(), atol=1e-6):
        cause = (
            "the absent entries are p, not 0: each column's repeated value is its own probability p[inst, feature] "
            "(torch.where(present, values, p)? its third argument is the value where absent: 0)"
        )
    elif bool((mode == mode.flatten()[0]).all()):
        cause = f"the absent entries are {float(mode.flatten()[0]):.3g}, not 0 (the value put where absent)"
    else:
        cause = "the absent entries take a value per (inst, feature) column that is not 0"
    fail(
        f"{what}: no entry is 0, and each (inst, feature) column repeats one value in many examples (the first "
        f"columns: {seen})",
        f"{cause}; so every entry looks present. Set absent entries to exactly 0 (torch.where(present, values, 0.0) "
        "or values * present)",
        code="absent_not_zero",
    )


def clamped_rates_failure(observed: Tensor, expected: Tensor, n: int, message: str) -> None:
    """(After the rates failed) the rates are p clamped into [lo, hi]: right where p is inside, lo or hi outside."""
    observed, p = observed.double().cpu(), expected.double().cpu()
    lo, hi = float(observed.flatten()[p.argmin()]), float(observed.flatten()[p.argmax()])
    tol_lo, tol_hi = float(rate_tolerance(n, lo)), float(rate_tolerance(n, hi))
    # A floor shows at the smallest p against that p's own tolerance (a floor of 0.01 on p = 0.0011 is far outside it,
    # yet within 2 tolerances of 0.01 itself); the whole table must still match p.clamp(lo, hi) below.
    raised = lo > float(p.min()) + float(rate_tolerance(n, p.min()))
    lowered = hi < float(p.max()) - 2 * tol_hi
    inside = (p > lo + 2 * tol_lo) & (p < hi - 2 * tol_hi)  # cells a clamp leaves alone: most of them
    if not (raised or lowered) or int(inside.sum()) < p.numel() / 2 or not consistent(observed, p.clamp(lo, hi), n):
        return
    bounds = " and ".join(
        s
        for s, on in (
            (f"p = {float(p.min()):.3g} gives {lo:.1%}", raised),
            (f"p = {float(p.max()):.3g} gives {hi:.1%}", lowered),
        )
        if on
    )
    fail(
        message + f"; the rates are right wherever p is inside about [{lo:.2g}, {hi:.2g}], but {bounds}",
        "the probabilities are clamped (p.clamp(...), a min/max) before the presence draw: rare and near-certain "
        "features must keep their own p; compare `rand < p` with p as it is",
        code="presence_clamped",
    )


def cell_span_failure(batch: Tensor, present: Tensor, p: Tensor, what: str, low: float, high: float) -> None:
    """(After the value law failed) each cell's present values fill only [low', high'] of width p·(high - low)
    around the middle: the value comes from the presence uniform (present where |2u - 1| < p, value 2u - 1)."""
    width, counts = high - low, present.sum(0)
    enough = counts >= 200
    if p is None or p.shape != counts.shape or not bool(enough.any()):
        return
    spans = torch.zeros(counts.shape, dtype=torch.float64)
    for a, c in enough.nonzero().tolist():
        cell = batch[:, a, c][present[:, a, c]].double()
        spans[a, c] = cell.max() - cell.min()
    p = p.double().cpu()
    if not bool(((spans - p * width).abs() < 0.05 * width)[enough].all()) or float(spans[enough].min()) > 0.9 * width:
        return
    a, c = divmod(int(torch.where(enough, p, 2.0).argmin()), p.shape[1])  # the narrowest cell with enough values
    cell = batch[:, a, c][present[:, a, c]]
    fail(
        f"{what}: each (inst, feature) cell's present values span a width {width:g} · p, set by its own probability p "
        f"(inst {a}, feature {c}, p = {float(p[a, c]):.3g}: values in [{float(cell.min()):.3f}, "
        f"{float(cell.max()):.3f}])",
        "the values are bounded by p: they are tied to the presence draw (one uniform deciding presence and "
        "giving the value, e.g. present where |2u - 1| < p with value 2u - 1), or scaled by p; draw the values with "
        f"their own rand call over the whole of U[{low:g}, {high:g}]",
        code="values_reuse_mask",
    )


def check_sign_independence(batch: Tensor, what: str) -> None:
    """Signs of two present entries of one example (two features of an instance, a feature in two instances) agree
    half the time. Given the m examples where both are present, the count of equal signs is Binomial(m, 1/2)
    for a right generator: the Bernstein tolerance rate_tolerance(m, 1/2), at failure probability DELTA per pair
    (under 50 pairs for the checks' sizes, within the GEN_TESTS budget of a generator check)."""
    present, positive = batch != 0, batch > 0
    _, k, f = batch.shape
    found = {}
    for label, pairs in (
        ("features", [((i, a), (i, c)) for i in range(k) for a in range(f) for c in range(a + 1, f)]),
        ("instances", [((i, a), (j, a)) for a in range(f) for i in range(k) for j in range(i + 1, k)]),
    ):
        for (i, a), (j, c) in pairs:
            both = present[:, i, a] & present[:, j, c]
            m = int(both.sum())
            if m < 50:
                continue
            same = float((positive[:, i, a] == positive[:, j, c])[both].double().mean())
            if abs(same - 0.5) > float(rate_tolerance(m, 0.5)):
                found.setdefault(label, (i, a, j, c, same, m))
    if not found:
        return
    i, a, j, c, same, m = next(iter(found.values()))
    shared = (
        "one sign per example, shared by every instance and feature (a sign drawn with shape [batch, 1, 1])"
        if len(found) == 2
        else "one sign per (example, instance), shared by its features ([batch, inst, 1])"
        if "features" in found
        else "one sign per (example, feature), shared by the instances ([batch, 1, feats])"
    )
    fail(
        f"{what}: where both are present, (inst {i}, feature {a}) and (inst {j}, feature {c}) have the same sign in "
        f"{same:.1%} of {m} examples; independent signs agree 50% of the time",
        f"the signs are {shared}: draw each value's sign (or the value itself) with the full shape [batch, inst, "
        "feats]",
        code="sign_shared_in_example",
    )


def ignores_out_failure(
    loss_of: Callable[[Tensor], object], out: Tensor, loss: Tensor, formula_with: Callable[[Tensor], Tensor], model
) -> None:
    """The loss gives the same value for another `out`: it ignores its argument. `formula_with(y)` is the right
    loss with y in place of `out`, to say whether the learner recomputed the forward pass (self(batch))."""
    other = (out.detach() * 0.5 + 0.3).requires_grad_()
    try:
        again = loss_of(other)
        same = isinstance(again, Tensor) and again.numel() == 1 and float(again.detach()) == float(loss.detach())
    except Exception:  # the learner's code failed on the probe: no evidence either way
        return
    if not same:
        return
    recomputed = ""
    try:
        with torch.no_grad():
            y = formula_with(model)
        if torch.allclose(y.double(), loss.detach().double().cpu().to(y.device), rtol=1e-4, atol=1e-6):
            recomputed = " Its value is the loss of self(batch): it recomputes the forward pass."
    except Exception:  # the model's forward failed: the observation alone stands
        pass
    fail(
        f"calculate_loss(out, batch) gave the same value ({float(loss.detach()):.6g}) for two different `out` "
        f"tensors: it does not use its `out` argument.{recomputed}",
        "compute the loss from the `out` passed in (the training loop calls the model once and hands its output "
        "over), not from self(batch) or another stored output",
        code="ignores_out",
    )


def with_reference_generators(cls: type, names: tuple[str, ...], ref: type) -> type:
    """A subclass of the learner's class whose generators are the reference's, called as (batch_size, p): a call
    with the arguments in another order or of other types fails naming what was passed."""

    def wrap(name: str) -> Callable:
        method = getattr(ref, name)

        def generator(self, n: object, p: object, *rest: object) -> Tensor:
            if not isinstance(n, int) or isinstance(n, bool) or not isinstance(p, Tensor) or rest:
                got = ", ".join(type(a).__name__ for a in (n, p, *rest))
                fail(
                    f"generate_batch called {name}({got}); it takes (batch_size: int, p: Tensor)",
                    f"the arguments are {'swapped' if isinstance(n, Tensor) and isinstance(p, int) else 'wrong'}: "
                    f"call self.{name}(batch_size, p[:, <block slice>]), the number of examples first",
                    code="generator_arguments",
                )
            return method(self, n, p)

        return generator

    return type("ProbeToyModel", (cls,), {name: wrap(name) for name in names})


def support_failures(batch: Tensor, what: str, low: float, p: Tensor | None = None) -> None:
    """Absent entries that are not 0 (absent_value_failure), and facts about a batch that no correct generator
    shows: every example's values normalised to sum (or norm, or largest value) 1 per instance, and (for U[0, 1]
    values) negative values in some (inst, feature) columns only."""
    absent_value_failure(batch, what, p)
    rows = (batch != 0).any(-1)
    if int(rows.sum()) >= 100 and float(batch[batch != 0].abs().std()) > 1e-3:  # constant values: named later
        x = batch.double()
        for label, stat in (("sum", x.sum(-1)), ("norm", x.norm(dim=-1)), ("largest value", x.abs().amax(-1))):
            if bool(((stat[rows] - 1).abs() <= 1e-4).all()):
                fail(
                    f"{what}: for every example, each instance's values over the features have {label} 1",
                    f"the examples are normalised (divided by their {label} over the features, like probabilities): "
                    "the features are independent, each present value its own draw; leave the examples unscaled",
                    code="normalised_examples",
                )
    neg = (batch < 0).any(0)  # [inst feats]
    if low < 0 or not bool(neg.any()) or bool(neg.all()) or batch.ndim != 3:
        return
    if bool((batch > 1).any()):  # a -1 mask on U[0, 1] values puts none above 1: a wider law, named later
        return
    feats = sorted({c for _, c in neg.nonzero().tolist()})
    fail(
        f"{what}: negative values (down to {float(batch.min()):.3g}) in {int(neg.sum())} of {neg.numel()} (inst, "
        f"feature) columns, only in features {feats}, never in the others",
        "U[0, 1] values under a 0/1 mask are never negative: a mask that holds -1 there (masks combined by "
        "subtraction as floats or ints, e.g. second = active - first, give -1 where the first was drawn but the "
        "pair is not active, and a -1 entry also reads as present, value != 0), or a minus sign on some values. "
        "Build masks as booleans (active & ~first) and use them to select U[0, 1] values",
        code="mask_negative",
    )


def scaled_values_failure(batch: Tensor, tables: dict[str, Tensor], what: str) -> None:
    """Each (inst, feature) cell's largest |value| equals a table of the model (importance, p) instead of 1: the values
    were multiplied by it. A cell with m >= 200 present U values has max |v| above 1 - 5% with probability
    1 - 0.95^m > 1 - 4e-5, and a table is only named when it is not all close to 1."""
    present = batch != 0
    counts = present.sum(0)
    enough = counts >= 200
    if batch.ndim != 3 or int(enough.sum()) < 3:
        return
    top = batch.abs().amax(0).double()
    for name, table in tables.items():
        t = table.double().cpu()
        if t.shape != top.shape or bool(((t - 1).abs() < 0.1).all()):
            continue
        if bool(((top - t).abs() <= 0.05 * t)[enough].all()):
            i, c = (int(v) for v in divmod(int(torch.where(enough, t, -torch.inf).argmax()), t.shape[1]))
            how = f"multiplied by {name}"
            if name.startswith("1 / "):
                how = f"divided by {name[4:]} (the 1/p rescaling of inverted dropout, or a normalisation by p?)"
            fail(
                f"{what}: each (inst, feature) cell's largest |value| is {name} there, not 1 (inst {i}, feature {c}: "
                f"{float(top[i, c]):.3g} for {name} = {float(t[i, c]):.3g})",
                f"the values are {how}: draw each present value from U[-1, 1] or U[0, 1] as it is "
                "(the presence probability only decides which features are present; the importance weights only the "
                "loss)",
                code="values_scaled_by_table",
            )


def instance_p_candidates(p: Tensor) -> list[tuple[str, str, Tensor]]:
    """Rate tables [inst feats] of a presence drawn against one probability per instance (its largest, smallest or
    mean p)."""
    tables = (
        ("largest", "amax", p.amax(-1, keepdim=True)),
        ("smallest", "amin", p.amin(-1, keepdim=True)),
        ("mean", "mean", p.mean(-1, keepdim=True)),
    )
    return [
        (
            f"presence_instance_{how}",
            f"every feature of an instance is present at the instance's {how} probability (p.{op}(-1)): each "
            "feature keeps its own p[inst, feature]",
            table.expand_as(p),
        )
        for how, op, table in tables
    ]


def pair_layout_failure(present: Tensor, rule: str, what: str) -> None:
    """The pairs follow `rule` ('together' or 'never') as features (j, j + n_pairs): '(two pair)' not '(pair two)'."""
    k = present.shape[-1] // 2
    first, second = present[..., :k], present[..., k:]
    swapped = int((first != second).sum()) == 0 if rule == "together" else not bool((first & second).any())
    if not swapped:
        return
    how = (
        "repeat with '(pair two)', or repeat_interleave(2, dim=-1); the layout you have comes from '(two pair)', "
        ".repeat, or repeat_interleave over another axis (dim=1, the instance axis) followed by a reshape"
        if rule == "together"
        else ("stack the two features on a last axis and flatten '(pair two)'")
    )
    fail(
        f"{what}: the pairs are features (j, j + n_pairs)",
        f"pair j must occupy the adjacent features 2j and 2j + 1: {how}",
        code="pair_layout",
    )


def never_partners_failure(present: Tensor, message: str) -> None:
    """(Anticorrelated pairs, after both features of a pair were seen on together) every (inst, feature) column is
    never on together with exactly one other column, which is not its adjacent partner: the pairs were laid out across
    the wrong axes. Two independent columns of N draws at rates >= a, b are never on together with probability
    (1 - ab)^N: with >= 50 expected joint hits (rates >= 0.05 at N = 20000) that is below e^-50."""
    n, k, f = present.shape
    cols = present.reshape(n, k * f).T.double()
    if bool((cols.sum(1) < 0.03 * n).any()):
        return
    both = cols @ cols.T
    both.fill_diagonal_(n)
    zero = both == 0
    if not bool((zero.sum(1) == 1).all()):
        return
    partner = zero.double().argmax(1)
    seen = [(a, int(b)) for a, b in enumerate(partner.tolist()) if a < b][:3]
    across = any(a // f != b // f for a, b in seen)
    fail(
        f"{message}; instead presence never overlaps for features that are not a pair: "
        + "; ".join(f"(inst {a // f}, feature {a % f}) and (inst {b // f}, feature {b % f})" for a, b in seen),
        "the two features of each pair are laid out on the wrong axes: "
        + (
            "they were stacked on another axis (torch.stack([first, second], dim=1), the instance axis) and reshaped, "
            "which mixes the inst and pair axes; "
            if across
            else ""
        )
        + "stack the two features on a new last axis (dim=-1) and flatten '(pair two)' (or einops.rearrange([first, "
        "second], 'two b i p -> b i (p two)'))",
        code="pair_layout",
    )


def fixed_count_failure(present: Tensor, what: str) -> None:
    """Every example of an instance has the same number of present features (neither none nor all): the features are
    not drawn independently (a fixed count k = round(p * n_features) placed by randperm / topk / multinomial). With
    independent draws the count of a row takes any single value with probability below 1 whenever some feature has
    0 < p < 1, so thousands of examples sharing one count happen with probability below that to the n-th power."""
    if not isinstance(present, Tensor) or present.ndim != 3 or present.shape[0] < 1000 or present.shape[2] < 2:
        return
    counts = present.sum(-1)  # [n inst]
    fixed = (counts == counts[:1]).all(0) & (counts[0] > 0) & (counts[0] < present.shape[2])
    if bool(fixed.any()):
        i = int(fixed.nonzero()[0, 0])
        rates = ", ".join(f"{float(r):.1%}" for r in present[:, i].double().mean(0))
        fail(
            f"{what}: every one of the {present.shape[0]} examples has exactly {int(counts[0, i])} of the "
            f"{present.shape[2]} features of instance {i} present (presence rates {rates})",
            "the number of present features per example is fixed, so the features are not independent: each feature "
            "needs its own coin (`rand(batch, inst, feats) < p`); possible causes: a count k (round(p * n_features), "
            "p.mean() * n, ...) of features chosen per example (randperm, topk, multinomial without replacement), "
            "or a mask built by sorting or ranking the draws",
            code="fixed_count",
        )


def batch_drift_failure(present: Tensor, p: Tensor, what: str) -> None:
    """Runs fixed_count_failure first.

    The rates of the first and second halves of the batch [n inst feats] differ: the probability a cell follows
    changes along the batch (p laid out over the batch axis, e.g. repeat_interleave(n, 0).view(n, ...)). Each half's
    rate is within rate_tolerance(n // 2) at variance 1/4 (the largest of any rate, so whatever the true rate) of its
    true rate with the checks' failure probability, so two halves drawn at one rate differ by at most twice that."""
    fixed_count_failure(present, what)
    pooled_drift_failure(present, p, what)
    if not isinstance(present, Tensor) or present.ndim != 3 or tuple(present.shape[1:]) != tuple(p.shape):
        return
    _no_empty_failure(present, p, what)
    h = present.shape[0] // 2
    first, second = present[:h].double().mean(0).cpu(), present[h : 2 * h].double().mean(0).cpu()
    pp = p.double().cpu()
    excess = (first - second).abs() - 2 * rate_tolerance(h, torch.full_like(pp, 0.5))  # any rate: its largest variance
    if bool((excess > 0).any()):
        i, j = divmod(int(excess.argmax()), pp.shape[1])
        fail(
            f"{what}: presence: inst {i}, feature {j} is present in {float(first[i, j]):.2%} of the first half of the "
            f"batch and {float(second[i, j]):.2%} of the second (p = {float(pp[i, j]):.2%})",
            "the probability a cell follows changes along the batch: p's layout is scrambled, so the instance (or "
            "feature) whose p a cell uses depends on its batch index (p.repeat_interleave(n, 0).view(n, ...) or a "
            "reshape of a repeated p?); broadcast p [inst feats] over a new leading batch axis instead "
            "(p.expand(n, -1, -1), or rand(n, inst, feats) < p)",
            code="batch_layout",
        )


def mean_probability_hint(p: Tensor, n: int, unit: str) -> str:
    """The hint for rates at p.mean(): it names the per-axis averages when n draws can't tell them from p.mean()."""
    close = any(
        not bool(((t - p.mean()).abs() > 2 * rate_tolerance(n, t)).any())
        for t in (p.mean(0, keepdim=True).expand_as(p), p.mean(1, keepdim=True).expand_as(p))
    )
    return "every entry uses the mean probability: compare with p itself, not p.mean()" + (
        f" (or an average over one axis, p.mean(0) or p.mean(-1): with these p the per-instance or per-{unit} "
        "averages are too close to the overall mean to tell apart)"
        if close
        else ""
    )


def averaged_rates_failure(observed: Tensor, expected: Tensor, n: int, message: str, unit: str) -> None:
    """A fallback after the rate candidates: the rates match p averaged over one axis, a table the candidates leave
    out where n draws can't tell it from the overall mean (which then did not match, so this one is the better
    account of the rates)."""
    for dim, how, code in (
        (1, f"the {unit}s of each instance (p.mean(-1))", unit),
        (0, "the instances (p.mean(0))", "instance"),
    ):
        table = expected.mean(dim, keepdim=True).expand_as(expected)
        if consistent(observed, table, n) and not consistent(observed, expected, n):
            fail(
                message,
                f"the rates match p averaged over {how}: every entry should use its own probability p[inst, {unit}], "
                "not an average of them",
                code=f"{code}_mean_probability",
            )
    for dim, axis, code in ((1, f"the {unit}s of each instance", unit), (0, "the instances", "instance")):
        for name, reduce in (("largest", torch.amax), ("smallest", torch.amin)):
            table = reduce(expected, dim, keepdim=True).expand_as(expected)
            if consistent(observed, table, n) and not consistent(observed, expected, n):
                fail(
                    message + f"; every rate matches the {name} p over {axis} (p.{reduce.__name__}({dim - 2}))",
                    f"p was reduced over {axis} (its {name} value, e.g. p.{reduce.__name__}({dim - 2}) or "
                    f"p.{'max' if name == 'largest' else 'min'}({dim - 2}).values) before the draw: every entry uses "
                    f"its own probability p[inst, {unit}], with no reduction over an axis",
                    code=f"{code}_reduced_probability",
                )


def choice_split_hint(present: Tensor, p_pairs: Tensor, n: int) -> str | None:
    """When an anticorrelated pair is active at the right rate 2p (first | second) but its activity is not split half
    and half between the two features: describe the split that was observed (the which-one draw is not a fair coin).
    The share of the first feature among active examples is a rate over about 2pn draws, within rate_tolerance of 1/2
    for a fair coin."""
    first, second = present[..., 0::2].double().mean(0).cpu(), present[..., 1::2].double().mean(0).cpu()
    if not consistent(first + second, 2 * p_pairs.double(), n):
        return None
    active = (first + second).clamp(min=1e-12)
    share = first / active
    if consistent(share, 0.5, max(1, int(n * float(2 * p_pairs.min())))):
        return None
    splits = "; ".join(
        f"inst {i}: "
        + ", ".join(f"p {float(p_pairs[i, j]):.2f} -> {float(share[i, j]):.0%}" for j in range(share.shape[1]))
        for i in range(share.shape[0])
    )
    observed = (
        f"the share of its active examples that go to the first feature is not 1/2 ({splits}; the rest go to the "
        "second)"
    )
    # One uniform u reused for both draws (active = u < 2p, first = u < 0.5 or u >= 0.5): the first feature's share
    # of the active examples is then min(1, 0.5 / 2p) (or the rest), a fixed function of p, not 1/2.
    low = (0.5 / (2 * p_pairs.double())).clamp(max=1.0)
    count = max(1, int(n * float(2 * p_pairs.min())))
    if any(consistent(share, s, count) for s in (low, 1 - low)):
        return (
            f"each pair is active at the right rate 2p, but {observed}: it is min(1, 0.5 / 2p) (or 1 minus it), "
            "exactly what one uniform reused for both draws gives (active = u < 2p, then the coin u < 0.5 on the same "
            "u: for 2p <= 0.5 every active u is below 0.5). The coin must be a draw of its own: first = "
            "torch.rand(...) < 0.5, independent of the activity draw"
        )
    return (
        f"each pair is active at the right rate 2p, but {observed}: the draw that picks which feature is on should be "
        "a fair coin (rand < 0.5) of its own; possible causes: a coin against a probability that depends on p (a "
        "precedence slip such as p / 2 * p for p / (2 * p)?), a threshold other than 0.5, or a coin that reuses "
        "the uniform of the activity draw"
    )


def grid_ties(batch: Tensor, present: Tensor, same: int, within: bool) -> bool:
    """Equal values within one example are evidence of a shared draw only beyond the ties a discrete draw gives: the
    same count for pairs whose second entry comes from the next example (independent of the first under any law)
    is the baseline. A shared draw ties every present pair (≫ 2 × baseline + 6); a grid of k values ties about
    1 / k of them in both counts alike."""
    other = batch.roll(1, 0)
    if within:
        ties = (batch.unsqueeze(-1) == other.unsqueeze(-2)) & present.unsqueeze(-1) & present.roll(1, 0).unsqueeze(-2)
        ties = ties & ~torch.eye(batch.shape[-1], dtype=torch.bool)
    else:
        ties = (batch.unsqueeze(2) == other.unsqueeze(1)) & present.unsqueeze(2) & present.roll(1, 0).unsqueeze(1)
        ties = ties & ~torch.eye(batch.shape[1], dtype=torch.bool)[:, :, None]
    return same <= 2 * (int(ties.sum()) // 2) + 6


def _no_empty_failure(present: Tensor, p: Tensor, what: str) -> None:
    """No example of an instance has every feature absent, though independent features at the observed rates r
    give n · Π(1 - r) of them (observed rates, so that a wrong p alone never fires this): at an expected count
    e >= 30, a correct draw has none with probability <= e^-30. Read back: every example has a present feature."""
    n = present.shape[0]
    expected = n * (1 - present.double().mean(0).cpu()).prod(-1)  # [inst], from the observed rates: any wrong p too
    empty = (~present.any(-1)).sum(0).cpu()  # [inst]
    bad = (empty == 0) & (expected >= 30)
    if not bool(bad.any()):
        return
    i = int(bad.nonzero()[0])
    fail(
        f"{what}: no example of inst {i} has every feature absent, though independent features give about "
        f"{float(expected[i]):.0f} such examples in {n} at the observed rates r (n · Π(1 - r))",
        "every example has at least one present feature: e.g. a feature forced present in empty examples, or "
        "empty examples redrawn. Features are independent: an example with no present feature is allowed (all 0)",
        code="no_empty_examples",
    )
