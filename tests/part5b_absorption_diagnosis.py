"""Diagnoses for section 5b's checkers that describe what was observed (`tests.part5b_absorption`).

Unlike the catalogue (`tests.part5b_absorption_mistakes`), these don't compare the learner's output with listed
mutants: they measure a property of it (which columns behave like parents and children, whether two families
are independent, what value a threshold update moved towards) and say what they saw, so a mistake nobody listed
still gets a message that points at it, and one that can't be pinned down gets its possible causes.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import Tensor

from tests.checking import fail
from tests.mutants import Reference, call
from tests.part5b_absorption_mistakes import RateStats
from utils.part5b_absorption import HierarchyConfig


def _documented_layout(cfg: HierarchyConfig) -> list[int]:
    """parent column of every column in the documented layout (-1 for a parent)."""
    return [-1] * cfg.n_parents + [p for p in range(cfg.n_parents) for _ in range(cfg.n_children)]


def observed_layout(on: Tensor, cfg: HierarchyConfig) -> list[int] | None:
    """The hierarchy the columns of `on` ([batch inst feats], bool) actually follow, or None if they follow none.

    Column f is a child of column g when f fires at least once, only where g fires, and g fires more often (f ⇒ g
    on every example of every instance); a parent is a column that implies no other. With exact 0/1 draws a
    child of a correct generator implies its parent and nothing else (another column covering all of a child's
    ~5000 firings by chance has probability far below 1e-100). Returned as `parent_of`: for every column, the
    column it depends on, -1 for a parent; None unless it has n_parents parents with n_children children each."""
    flat = on.flatten(0, 1).double()
    count = flat.sum(0)
    together = flat.T @ flat  # [f g]: examples with both on (exact: counts < 2^53)
    implies = (together == count[:, None]) & (count[:, None] > 0) & (count[None, :] > count[:, None])
    parent_of = []
    for row in implies:
        targets = torch.nonzero(row).flatten().tolist()
        if len(targets) > 1:
            return None
        parent_of.append(targets[0] if targets else -1)
    parents = [f for f, q in enumerate(parent_of) if q == -1]
    if len(parents) != cfg.n_parents or any(parent_of[q] != -1 for q in parent_of if q != -1):
        return None
    if any(parent_of.count(p) != cfg.n_children for p in parents):
        return None
    return parent_of


def _layout_string(parent_of: list[int]) -> str:
    parents = [f for f, q in enumerate(parent_of) if q == -1]
    names = []
    seen: dict[int, int] = {}
    for q in parent_of:
        if q == -1:
            names.append(f"P{len([n for n in names if n.startswith('P')])}")
        else:
            c = seen.get(q, 0)
            seen[q] = c + 1
            names.append(f"C{parents.index(q)}.{c}")
    return "[" + ", ".join(names) + "]"


def check_layout(x: Tensor, cfg: HierarchyConfig, what: str, orphans: int) -> None:
    """Children fire without their parent in the documented layout: say which layout the columns do follow.

    Called after the specific layouts (child-major, parents last) were ruled out. When the columns form a
    hierarchy in another order, the layout is the mistake and is named; when they form none, the message says
    what was observed and lists the causes that fit it."""
    on = x.bool()
    layout = observed_layout(on, cfg)
    if layout is not None and layout != _documented_layout(cfg):
        parents = [f for f, q in enumerate(layout) if q == -1]
        rates = on[..., parents].double().mean((0, 1)).tolist()
        families = "; ".join(
            f"columns {[f for f, q in enumerate(layout) if q == p]} fire only with column {p}" for p in parents
        )
        fail(
            f"{what}: children fire without their parent ({orphans} times) in the documented layout, but your "
            f"columns do form a hierarchy in another order: columns {parents} fire on their own (at "
            f"{', '.join(f'{r:.1%}' for r in rates)}; p_parent = {cfg.p_parent:.0%}) and {families}, i.e. the "
            f"layout {_layout_string(layout)} instead of {_layout_string(_documented_layout(cfg))}",
            "the hierarchy is there, the column order is not: parents first (features 0 .. n_parents - 1), then "
            "child c of parent p at n_parents + p·n_children + c, i.e. torch.cat([parents, children.flatten(-2)], "
            "dim=-1) (concatenating or stacking each parent with its own children interleaves the families)",
            code="layout",
        )
    child_like = sum(1 for f in range(on.shape[-1]) if _fires_only_with_another(on, f))
    observed = (
        "no column fires only together with another one"
        if child_like == 0
        else f"{child_like} columns fire only together with another one, but not in a parent/children layout"
    )
    fail(
        f"{what}: a child fires without its parent {orphans} times ({observed})",
        "a child can only fire when its parent fires: AND each child's draw with its parent "
        "(children & parents[..., None]); and keep the documented column order: parents first, then child c of "
        "parent p at n_parents + p·n_children + c",
        code="child_without_parent",
    )


def _fires_only_with_another(on: Tensor, f: int) -> bool:
    col = on[..., f]
    if not col.any():
        return False
    others = torch.cat([on[..., :f], on[..., f + 1 :]], -1)
    return bool((others | ~col[..., None]).all(0).all(0).any())


def implied_target_note(before: Tensor, after: Tensor, m: float, acts: Tensor, right_target: Tensor) -> str:
    """What value the threshold update moved towards, recovered from the EMA step: target = before + Δ / m.

    Per instance, the target is placed among the kept positive activations (its rank, or "none of them"), so an
    update from a statistic nobody listed is described by what it is, not only by "differs"."""
    target = (before + (after - before) / m).double().cpu()
    right = right_target.double().cpu()
    acts = acts.detach().double().cpu()
    notes = []
    for i in range(target.shape[0]):
        kept = acts[:, i][acts[:, i] > 0].sort().values
        # 1e-3 relative: the recovered target carries the float32 rounding of the step (~1e-7 / m = 1e-5 of it)
        hits = torch.nonzero(torch.isclose(kept, target[i], rtol=1e-3, atol=1e-4)).flatten().tolist()
        if not torch.isfinite(target[i]) or kept.numel() == 0:
            where = "no kept activation"
        elif hits:
            where = f"the kept positive activation ranked {hits[0] + 1} of {kept.numel()} from the smallest"
        else:
            where = "none of the kept activations (an average, or a value from outside the kept ones?)"
        notes.append(f"inst {i}: towards {target[i].item():.4g} ({where}; right: {right[i].item():.4g})")
    return "the update moved the threshold (target = threshold + change / THRESHOLD_MOMENTUM) " + "; ".join(notes)


def expect_joint(both: Tensor, count: int, p: float, what: str, hint: str, code: str) -> None:
    """`both` successes out of `count` draws that should be Bernoulli(p) (p = a product of two rates)."""
    observed, tol = int(both) / max(count, 1), RateStats.tolerance(count, p)
    if count and abs(observed - p) > tol:
        fail(f"{what} is {observed:.2%}, expected {p:.2%} ± {tol:.2%} for independent draws", hint, code=code)


def check_independence(x: Tensor, cfg: HierarchyConfig, what: str) -> None:
    on = x.bool()
    n, n_inst, n_feats = on.shape
    pp, pc, nc = cfg.p_parent, cfg.p_child, cfg.n_children
    parents = on[..., : cfg.n_parents]
    grouped = on[..., cfg.n_parents :].unflatten(-1, (cfg.n_parents, nc))
    marginal = cfg.marginal_probabilities().tolist()

    # Instances are independent copies: the same feature in two instances fires together with p_f².
    for i in range(n_inst):
        for j in range(i + 1, n_inst):
            for f in range(n_feats):
                expect_joint(
                    (on[:, i, f] & on[:, j, f]).sum(),
                    n,
                    marginal[f] ** 2,
                    f"{what}: feature {f} on in both instances {i} and {j}",
                    "draw separately for every instance: a [batch, 1, ...] random tensor broadcast over "
                    "instances gives every instance the same features",
                    "shared_over_instances",
                )
    # Parents are independent of each other, and of the next example in the batch.
    for i in range(n_inst):
        for a in range(cfg.n_parents):
            for b in range(a + 1, cfg.n_parents):
                expect_joint(
                    (parents[:, i, a] & parents[:, i, b]).sum(),
                    n,
                    pp**2,
                    f"{what}: parents {a} and {b} of inst {i} on together",
                    "parents fire independently: one random number per parent (don't share a draw between them)",
                    "parents_dependent",
                )
        for a in range(cfg.n_parents):
            # disjoint pairs of neighbours (examples 2j, 2j + 1), so the n/2 products are independent draws
            expect_joint(
                (parents[0 : n - 1 : 2, i, a] & parents[1::2, i, a]).sum(),
                n // 2,
                pp**2,
                f"{what}: parent {a} of inst {i} on in two neighbouring examples",
                "draw every example separately (random tensors of shape [batch, inst, ...])",
                "shared_over_batch",
            )
    # Families are independent: a child of parent a and a child of parent b fire together with (p_parent·p_child)²
    # (a random number shared between the families, e.g. one uniform per example for every parent, breaks it).
    for i in range(n_inst):
        for a in range(cfg.n_parents):
            for b in range(a + 1, cfg.n_parents):
                for c in range(nc):
                    for d in range(nc):
                        expect_joint(
                            (grouped[:, i, a, c] & grouped[:, i, b, d]).sum(),
                            n,
                            (pp * pc) ** 2,
                            f"{what}: child {c} of parent {a} and child {d} of parent {b} (inst {i}) on together",
                            "the families must be independent, but their children are correlated: some random "
                            "number is shared between the parents (e.g. one uniform per example, shape "
                            "[batch, inst, 1, 1], used for every parent's children): draw one per parent, shape "
                            "[batch, inst, n_parents, ...]",
                            "families_dependent",
                        )
    if cfg.exclusive:
        return
    # Without exclusivity, the children of a firing parent are independent: two siblings with p_child².
    for i in range(n_inst):
        for p in range(cfg.n_parents):
            given = parents[:, i, p]
            for a in range(nc):
                for b in range(a + 1, nc):
                    both = (grouped[:, i, p, a] & grouped[:, i, p, b] & given).sum()
                    hint = (
                        "with exclusive=False the children of a firing parent fire independently "
                        "(only cfg.exclusive makes them exclude each other)"
                        if int(both) == 0
                        else "draw one random number per child: siblings must not share a draw"
                    )
                    expect_joint(
                        both,
                        int(given.sum()),
                        pc**2,
                        f"{what}: children {a} and {b} of parent {p} (inst {i}) together, given the parent fires",
                        hint,
                        "siblings_dependent",
                    )


def reseeded(first: Tensor, second: Any, what: str) -> None:
    """Two calls in a row returned the same batch: the function reseeds the generator on every call."""
    if isinstance(second, Tensor) and second.shape == first.shape and torch.equal(second.detach().cpu(), first):
        fail(
            f"two calls of {what} in a row returned identical batches",
            "each call should draw a new batch: don't call torch.manual_seed (or build a seeded generator) inside "
            "the function, or every training step sees the same examples",
            code="reseeded",
        )


def floor_division(out: Tensor, expected: Tensor, what: str) -> None:
    """The fractions rounded down to whole numbers: absorbed // cases (floor division) instead of /."""
    fractional = (expected != expected.floor()).any() and expected.floor().any()  # else it reads as all zeros
    if fractional and torch.equal(out.detach().cpu(), expected.floor().to(out.dtype).cpu()):
        fail(
            f"{what} is {out.tolist()}: the expected fractions {expected.tolist()} rounded down to whole numbers",
            "that is integer (floor) division: absorbed // cases is 0 unless every case is absorbed; divide with /",
            code="floor_division",
        )


def _is_prefix(mask: Tensor) -> bool:
    """Each row's True entries are exactly its first ones."""
    return bool((mask.cumsum(-1) == torch.arange(1, mask.shape[-1] + 1, device=mask.device)).eq(mask).all())


def front_written(out: Tensor, what: str) -> None:
    """The kept values sit in the first slots of a flattened layout, not at their own positions."""
    kept = out != 0
    layouts = [kept.transpose(0, 1).reshape(kept.shape[1], -1), kept.reshape(1, -1)]
    if any(_is_prefix(m) for m in layouts):
        fail(
            f"{what} keeps the right values, but at the first positions (of each instance's [batch d_sae] "
            "entries, flattened), not at their own positions",
            "put each kept value back where it came from: zeros.scatter(-1, topk.indices, topk.values), not into "
            "the first k·batch slots",
            code="front_written",
        )


class _Remembered:
    """Stands for a module in a Reference's arguments: the copy a run makes of it is the module's deep copy,
    remembered, so that `pick` can read what the call changed in it (a buffer updated in place)."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.module = copy.deepcopy(module)  # its state now, whatever later calls do to the original
        self.copies: list[torch.nn.Module] = []

    def __deepcopy__(self, memo: dict) -> torch.nn.Module:
        clone = copy.deepcopy(self.module, memo)
        self.copies.append(clone)
        return clone


def threshold_change_reference(sae: torch.nn.Module, h: Tensor) -> Reference:
    """The Reference for the change of `sae.threshold` that the solution's `encode(h)` makes (training mode),
    taken from `sae`'s state now: the solution's encode runs on a copy, `pick` reads the copy's threshold."""
    remembered = _Remembered(sae)
    before = sae.threshold.detach().clone()
    encode = type(sae).encode
    return call(encode, remembered, h, pick=lambda _: remembered.copies[-1].threshold.detach() - before)
