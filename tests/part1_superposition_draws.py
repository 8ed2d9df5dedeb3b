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

from collections.abc import Callable

import torch
from torch import Tensor

from tests.checking import fail
from tests.part1_superposition_probes import consistent, rate_tolerance


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
    if bool((a != 0).any()) and torch.equal(a.detach().cpu(), b.detach().cpu()):
        fail(
            f"two calls of {what} returned exactly the same batch",
            "every call must draw new random numbers: the draws are reseeded inside the method (torch.manual_seed(...) "
            "at its top, or a torch.Generator().manual_seed(...) created in it), so each call repeats the first "
            "batch and training sees one batch over and over; seed once outside (the notebook does), never inside "
            "the generator",
            code="same_draws_every_call",
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
    raised, lowered = lo > float(p.min()) + 2 * tol_lo, hi < float(p.max()) - 2 * tol_hi
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
