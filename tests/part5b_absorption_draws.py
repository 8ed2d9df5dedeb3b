"""Randomness of generate_hierarchical_batch drawn once and shared by the whole batch (`tests.part5b_absorption`).

Run on the exact structure, before any frequency is measured: a parent drawn once ([1, inst, n_parents]
expanded over the batch) is on in every example or in none, which the rate check would only see as a parent
firing at 100% (or 0%) and could blame on the draw's law. Every probability is strictly between 0 and 1 and
the batch has thousands of examples, so a correct draw leaves no (instance, feature) cell constant over it."""

from __future__ import annotations

from torch import Tensor

from tests.checking import fail
from utils.part5b_absorption import HierarchyConfig


def shared_over_batch(on: Tensor, cfg: HierarchyConfig, what: str) -> None:
    """on: [batch inst feats] bool. Names a batch in which every example is the same, parents that are the same in
    every example, or children that are the same in every example whose parent fires."""
    n = on.shape[0]
    if n <= 1:
        return
    if (on == on[:1]).all():
        fail(
            f"{what}: every example in the batch is the same",
            "draw separately for every example: random tensors of shape [batch, inst, ...]",
            code="shared_over_batch",
        )
    parents = on[..., : cfg.n_parents]  # [batch inst parent]
    if (parents == parents[:1]).all():
        first = parents[0]
        n_on, cells = int(first.sum()), first.numel()
        seen = (
            f"{what}: every example has the same parents on: each of the {cells} (instance, parent) pairs is on in "
            f"all {n} examples or in none ({n_on} on everywhere, {cells - n_on} nowhere)"
        )
        if 0 < n_on < cells:
            fail(
                seen,
                f"the parents' random draw is shared by the whole batch (e.g. torch.rand(1, n_inst, n_parents), or "
                "[n_inst, n_parents], broadcast or .expand()-ed over the batch): draw one number per example, "
                f"torch.rand(batch_size, n_inst, n_parents) < p_parent (p_parent = {cfg.p_parent})",
                code="parents_shared_over_batch",
            )
        fail(
            seen,
            f"with p_parent = {cfg.p_parent} a parent should be on in about that fraction of the examples. Possible "
            "causes: one draw shared by the whole batch (a [1, inst, n_parents] random tensor expanded over it) "
            "that happened to come out the same for every parent, or parents that aren't drawn at all (set to 1)",
            code="parents_constant",
        )
    children = on[..., cfg.n_parents :].unflatten(-1, (cfg.n_parents, cfg.n_children))  # [batch inst parent child]
    given = parents.unsqueeze(-1).expand_as(children)
    fired = (children & given).sum(0)  # [inst parent child]: how often the child fires with its parent
    with_parent = given.sum(0)
    constant = (fired == 0) | (fired == with_parent)
    if (with_parent >= 2).all() and constant.all() and (fired > 0).any() and (fired == 0).any():
        fail(
            f"{what}: every example whose parent fires has the same children: each (instance, parent, child) is on "
            f"in all the examples where its parent fires or in none of them ({int((fired > 0).sum())} always, "
            f"{int((fired == 0).sum())} never)",
            "the children's random draw is shared by the whole batch (e.g. a [1, n_inst, n_parents, n_children] "
            "random tensor broadcast over it): draw the children per example, random tensors of shape "
            "[batch_size, n_inst, n_parents, ...], then keep them only where their parent fires",
            code="children_shared_over_batch",
        )


def children_sharing_parent_draw(rates: Tensor, counts: Tensor, cfg: HierarchyConfig) -> tuple[str, str] | None:
    """(hint, code) when, with independent children, SOME children fire given their parent at the rate a draw shared
    with the parent gives, min(p_child, p_parent) / p_parent, and every other child at p_child (each rate within 6
    standard errors of its value, the two values far apart): those children compare the parent's uniform with
    p_child. rates, counts: [inst parent child], the rate given the parent and the number of examples with it."""
    pp, pc = cfg.p_parent, cfg.p_child
    if cfg.exclusive:
        return None
    shared = min(pc, pp) / pp
    n = counts.clamp_min(1).double()
    se = lambda p: ((p * (1 - p)) if 0 < p < 1 else 1e-4) / n
    near = lambda p: (rates.double() - p).abs() < 6 * se(p).sqrt()
    if ((shared - pc) ** 2 < 144 * se(pc)).any():
        return None  # the two rates are too close here to tell apart
    as_shared, as_right = near(shared), near(pc)
    if not (as_shared | as_right).all() or not as_shared.any() or not as_right.any():
        return None  # every child wrong is another candidate's pattern (all children share the draw)
    kids = as_shared.all(0).all(0).nonzero().flatten().tolist()
    if as_shared.equal(as_shared.all(0).all(0).expand_as(as_shared)):
        which = f"child {', '.join(map(str, kids))} of every parent in every instance"
    else:
        which = ", ".join(f"inst {i} parent {p} child {c}" for i, p, c in as_shared.nonzero().tolist()[:3])
    always = " (every time its parent fires, as p_child ≥ p_parent)" if shared == 1 else ""
    return (
        f"{which} fires at min(p_child, p_parent) / p_parent = {shared:.0%} given its parent{always}, the other "
        f"children at p_child = {pc:.0%}: randomness shared between a parent and its child. The same uniform u is "
        "compared with two thresholds, u < p_parent for the parent and u < p_child for the child, so given its "
        "parent the child fires when u < min(p_child, p_parent), e.g. a slice of one random tensor [..., 1 + "
        "n_children] that hands the parent's column to that child. Draw every child from its own uniform (other "
        "causes of this rate: that child's probability p_child / p_parent, or, at 100%, the child set to its parent)",
        "child_shares_parent_draw",
    )


def rates_by_child_index(rates: Tensor, counts: Tensor, cfg: HierarchyConfig) -> tuple[str, str] | None:
    """(hint, code) when the children's rates given their parent depend on the child's index j alone: every
    (instance, parent) has the same rate for child j (each within 6 standard errors of the rate pooled over them),
    and the pooled rates differ from p_child and between two indices (by more than 6 standard errors of their
    difference). Reports the rate per index, says whether it falls or rises with j, and lists possible causes
    rather than asserting one. rates, counts: [inst parent child], the rate given the parent and the number of
    examples with it."""
    nc, pc = cfg.n_children, cfg.p_child
    if nc < 2 or rates.ndim != 3 or rates.shape[-1] != nc:
        return None
    n = counts.double().clamp_min(1)
    hits = rates.double() * n
    pooled = hits.sum((0, 1)) / n.sum((0, 1))  # [child]
    var = lambda p, m: (p * (1 - p)).clamp_min(1e-4) / m
    if not ((rates.double() - pooled).abs() < 6 * var(pooled, n).sqrt()).all():
        return None  # the rates also depend on the instance or the parent: not a pattern in j alone
    se = var(pooled, n.sum((0, 1))).sqrt()
    spread = pooled.max() - pooled.min()
    lo, hi = int(pooled.argmin()), int(pooled.argmax())
    if spread < 6 * (se[lo] ** 2 + se[hi] ** 2).sqrt() or ((pooled - pc).abs() < 6 * se).all():
        return None
    steps = pooled.diff()
    trend = "falls" if (steps < 0).all() else "rises" if (steps > 0).all() else "changes"
    listed = ", ".join(f"child {j}: {float(v):.1%}" for j, v in enumerate(pooled))
    return (
        f"given its parent, the rate {trend} with the child's index ({listed}, pooled over instances and parents; "
        f"the same pattern in each): every child should fire with p_child = {pc:.0%} given its parent, whatever its "
        "index. Possible causes: intervals for u whose widths or edges depend on j (child j fires when u is in "
        "[j·p_child, (j + 1)·p_child), every width p_child), a child's probability adjusted for its earlier siblings "
        "(p_child is already each child's own rate), or children drawn one after another with the draw changed by "
        "the earlier ones",
        "child_rate_by_index",
    )


RATE_LABEL = {"p_parent": "parent's rate", "p_child": "child's rate given its parent"}


def no_child_rate(x: Tensor, cfg: HierarchyConfig, field: str) -> str:
    """With exclusive children, what share of firing parents had no child (observed, and 1 - n_children·p_child
    expected), said when a child's rate ignores cfg.p_child: a draw of "none" at a fixed rate, then a child picked
    uniformly, shows up here as that fixed rate (the text's example has 3 × 0.3 = 0.9, so "none" is 0.1 there)."""
    if field != "p_child" or not cfg.exclusive:
        return ""
    on = x.bool()
    parents = on[..., : cfg.n_parents]
    some = on[..., cfg.n_parents :].unflatten(-1, (cfg.n_parents, cfg.n_children)).any(-1)
    n = int(parents.sum())
    seen = int((parents & ~some).sum()) / max(n, 1)
    want = 1 - cfg.n_children * cfg.p_child
    note = f"; a firing parent has no child in {seen:.1%} of examples (expected 1 - n_children·p_child = {want:.0%})"
    # 6 binomial standard deviations at the observed count: a draw at exactly 0.1 lands inside with certainty
    if abs(seen - 0.1) <= 6 * (0.1 * 0.9 / max(n, 1)) ** 0.5 and abs(want - 0.1) > 0.05:
        note += ": the text's example value 0.1 for 'none' (3 children × 0.3 there) used as a fixed rate"
    return note
