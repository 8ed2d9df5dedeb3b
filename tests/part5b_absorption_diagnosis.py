"""Diagnoses for section 5b's checkers that describe what was observed (`tests.part5b_absorption`).

Unlike the catalogue (`tests.part5b_absorption_mistakes`), these don't compare the learner's output with listed
mutants: they measure a property of it (which columns behave like parents and children, whether two families
are independent, what value a threshold update moved towards) and say what they saw, so a mistake nobody listed
still gets a message that points at it, and one that can't be pinned down gets its possible causes.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import re
import types
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from solutions.part5b_absorption import absorption_fraction
from tests.checking import CheckFailed, fail
from tests.checking import _describe_error as describe_error
from tests.mutants import Reference, call
from tests.part5b_absorption_cross_instance import cross_instance_hint
from tests.part5b_absorption_draws import RATE_LABEL, no_child_rate
from tests.part5b_absorption_fractions import FEATURE_INDEX_CAUSE as FEAT_CAUSE
from tests.part5b_absorption_fractions import copies_verdict, feature_index_excluded, moved_entries, product_fraction
from tests.part5b_absorption_mistakes import RateStats, check_rates
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
            where = (
                "none of the kept activations. Possible causes: an average of them, a value from outside the kept "
                "ones, or the EMA stepped more than once per batch (n steps move it 1 - (1 - m)^n of the way)"
            )
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


def topk_layout(out: Tensor, pre: Tensor, k: int, what: str) -> None:
    """Two wrong batch_topk outputs named by what they look like, before the counts are compared.

    * every instance keeps the same positions, the union of all instances' top k·batch positions: the row-wise
      indices were applied to every row (kept[:, indices] = values);
    * one entry too many or too few kept, and not with pre's values: a per-instance constant subtracted (a soft
      threshold relu(pre - cut), which also zeroes the cut entry itself), or values changed some other way."""
    batch, n_inst, _ = out.shape
    kept = (out != 0).transpose(0, 1).reshape(n_inst, -1)  # [inst (batch d_sae)]
    flat = pre.transpose(0, 1).reshape(n_inst, -1)
    top = flat.topk(k * batch, dim=-1)
    right = torch.zeros_like(kept).scatter(-1, top.indices, True)
    union = right.any(0)
    if n_inst > 1 and (kept == kept[:1]).all() and torch.equal(kept[0], union) and not torch.equal(right, kept):
        fail(
            f"{what}: every instance keeps the same {int(union.sum())} positions, the union of all instances' top "
            f"k·batch positions (expected {k * batch} per instance, each at its own positions)",
            "a [inst, k·batch] tensor of indices used as kept[:, indices] = values applies every instance's indices "
            "to every row (advanced indexing doesn't pair row i with indices[i]): use "
            "torch.zeros_like(flat).scatter(-1, indices, values), or kept[torch.arange(n_inst)[:, None], indices]",
            code="indices_all_rows",
        )
    if not (kept.sum(-1) - k * batch).abs().eq(1).all():  # an exact count goes on to the layout checks
        return
    got = out.transpose(0, 1).reshape(n_inst, -1)
    if torch.equal(got[kept], flat[kept]):
        return
    shifts = []
    for i in range(n_inst):
        diff = (flat[i] - got[i])[kept[i]]
        if diff.numel() == 0 or (diff.max() - diff.min()).abs() > 1e-5 * (1 + diff.abs().max()):
            shifts = []
            break
        shifts.append(float(diff.mean()))
    cut = top.values[:, -1].tolist()
    if shifts and all(abs(s - c) <= 1e-5 * (1 + abs(c)) for s, c in zip(shifts, cut, strict=True)):
        fail(
            f"{what}: the kept entries are pre minus the k·batch-th largest value of their instance, and "
            f"{kept.sum(-1).tolist()} entries per instance are non-zero (expected {k * batch})",
            "that is a soft threshold, relu(pre - cut): it shrinks every kept value and zeroes the k·batch-th entry "
            "itself; keep the top k·batch values unchanged (pre * (pre >= cut), or scatter topk's values back)",
            code="soft_threshold",
        )
    observed = (
        f"pre minus a constant per instance ({', '.join(f'{s:.4g}' for s in shifts)})"
        if shifts
        else "not pre's values (nor pre shifted by one constant per instance)"
    )
    fail(
        f"{what}: {kept.sum(-1).tolist()} entries per instance are non-zero (expected {k * batch}) and the kept "
        f"entries are {observed}",
        "keep the top k·batch entries of each instance with their values unchanged (scatter topk's values back into "
        "zeros, or pre * mask) and zero the rest: don't subtract, rescale or recompute the kept values",
        code="values_changed",
    )


def routed_batch_topk(k_expected: int, batch_topk: Callable) -> Callable:
    """The reference batch_topk for the learner's encode, checking first that it got k = cfg.k (the budget per
    example: batch_topk multiplies it by the batch size itself)."""

    def routed(pre: Tensor, k: int) -> Tensor:
        if isinstance(k, int) and k != k_expected:
            batch = pre.shape[0] if isinstance(pre, Tensor) and pre.dim() == 3 else None
            which = " = cfg.k · batch" if batch is not None and k == k_expected * batch else ""
            fail(
                f"encode called batch_topk(pre, k={k}){which}, expected k = cfg.k = {k_expected}",
                "pass cfg.k itself: batch_topk keeps k·batch entries per instance, multiplying k by pre.shape[0] "
                "inside (multiplying by the batch before the call counts the batch twice)",
                code="topk_budget",
            )
        return batch_topk(pre, k)

    return routed


def encode_named(sae: torch.nn.Module, h: Tensor, d_sae: int, n_inst: int) -> Any:
    """sae.encode(h); an error where a d_sae-sized tensor met an n_inst-sized one is named by those axes."""
    try:
        return sae.encode(h)
    except RuntimeError as err:
        sizes = re.findall(r"\((\d+)\)", str(err))
        if sorted(int(s) for s in sizes[:2]) != sorted((d_sae, n_inst)):
            raise
        described = describe_error(err)
        fail(
            f"{described.message}\n(the sizes are d_sae = {d_sae} and n_inst = {n_inst})",
            "a tensor over the latents met one over the instances; the threshold has one entry per instance, so "
            "its update needs the minimum over each instance's batch AND latents (dims 0 and 2, e.g. "
            "acts.transpose(0, 1).flatten(1).min(-1)): a reduction over dims (0, 1) leaves one value per latent; "
            "or a [d_sae]-shaped tensor was used where [n_inst] was meant",
            code="threshold_axes",
        )


RMS_HINT = "take the mean over d_in of the squared error, without a square root (an MSE per prefix, not an RMS)"
SUM_RECS_HINT = (
    "one loss per prefix, then sum the losses: Σ_m mean((h_m - h)²), not one loss of the summed reconstructions "
    "(h_m are alternatives, each a complete reconstruction)"
)


def matryoshka_candidates(acts: Tensor, W: Tensor, b: Tensor, h: Tensor, sizes: tuple[int, ...]) -> list:
    def rec(lo_hi: list[tuple[int, int]], bias: bool = True) -> list[Tensor]:
        return [torch.einsum("bis,isd->bid", acts[..., lo:hi], W[:, lo:hi]) + (b if bias else 0) for lo, hi in lo_hi]

    def loss(recs: list[Tensor], kind: str = "mean") -> Tensor:
        err = [r - h for r in recs]
        per = {
            "mean": lambda e: e.pow(2).mean(-1),
            "sum": lambda e: e.pow(2).sum(-1),
            "norm": lambda e: e.norm(dim=-1),
            "mean_sq": lambda e: e.mean(-1).pow(2),
            "rms": lambda e: e.pow(2).mean(-1).sqrt(),
        }[kind]
        return sum((per(e) for e in err), torch.zeros_like(h[..., 0]))

    d_sae = acts.shape[-1]
    prefixes = [(0, m) for m in sizes]
    common = [
        (
            "b_dec_twice",
            "compare the reconstruction (which includes b_dec) with h itself, not with h - b_dec",
            sum((r - h + b).pow(2).mean(-1) for r in rec(prefixes)),
        ),
        (
            "mean_all",
            "average the squared error over d_in only (mean(-1)), one loss per example and instance: "
            "F.mse_loss averages over batch and instances too",
            sum((r - h).pow(2).mean() for r in rec(prefixes)) * torch.ones_like(h[..., 0]),
        ),
        (
            "empty_prefix",
            "an extra term for the empty prefix m = 0 (b_dec alone, (b_dec - h)²): sum over the sizes in "
            "prefix_sizes only",
            loss(rec([(0, 0), *prefixes])),
        ),
    ]
    if len(sizes) == 1:  # one prefix, the full width: the prefix-structure mistakes change nothing
        return [
            *common,
            ("no_b_dec", "add b_dec to the reconstruction", loss(rec([(0, d_sae)], bias=False))),
            ("skipped_last", "loop over every size in prefix_sizes, including the last", torch.zeros_like(h[..., 0])),
            (
                "sum_d_in",
                "average the squared error over d_in (mean(-1)), don't sum it",
                loss(rec([(0, d_sae)]), "sum"),
            ),
            ("norm", "square the error: mean over d_in of (h_m - h)², not its norm", loss(rec([(0, d_sae)]), "norm")),
            ("mean_then_square", "square first, then average over d_in", loss(rec([(0, d_sae)]), "mean_sq")),
            ("rms", RMS_HINT, loss(rec([(0, d_sae)]), "rms")),
        ]
    groups = [(lo, hi) for lo, hi in zip((0, *sizes[:-1]), sizes, strict=True)]
    widths = [(0, min(int(sum(sizes[: i + 1])), d_sae)) for i in range(len(sizes))]
    return [
        *common,
        (
            "weighted",
            "sum the prefix losses with equal weights: no factor m / d_sae",
            sum((m / d_sae) * loss(rec([p])) for m, p in zip(sizes, prefixes, strict=True)),
        ),
        (
            "cumulative_sizes",
            "prefix_sizes are the prefix widths themselves (acts[..., :m]), not group widths to accumulate",
            loss(rec(widths)),
        ),
        ("no_b_dec", "add b_dec to every prefix reconstruction", loss(rec(prefixes, bias=False))),
        (
            "all_latents",
            "prefix m decodes only the first m latents: acts[..., :m] with W_dec[:, :m]",
            loss(rec([(0, d_sae)] * len(sizes))),
        ),
        (
            "last_latents",
            "use the FIRST m latents ([..., :m]), not the last m",
            loss(rec([(d_sae - m, d_sae) for m in sizes])),
        ),
        (
            "groups",
            "each prefix starts at latent 0: acts[..., :m], not the group between consecutive sizes",
            loss(rec(groups)),
        ),
        (
            "mean_over_prefixes",
            "sum the losses over the prefixes, don't average them",
            loss(rec(prefixes)) / len(sizes),
        ),
        (
            "prefix_b_dec",
            "add b_dec to EVERY prefix reconstruction (each prefix is a complete SAE output), not only the full one",
            sum(
                ((r if m == sizes[-1] else r - b) - h).pow(2).mean(-1)
                for r, m in zip(rec(prefixes), sizes, strict=True)
            ),
        ),
        (
            "skipped_last",
            "loop over every size in prefix_sizes, including the last (the full width)",
            loss(rec(prefixes[:-1])),
        ),
        ("sum_d_in", "average the squared error over d_in (mean(-1)), don't sum it", loss(rec(prefixes), "sum")),
        ("norm", "square the error: mean over d_in of (h_m - h)², not its norm", loss(rec(prefixes), "norm")),
        ("mean_then_square", "square first, then average over d_in", loss(rec(prefixes), "mean_sq")),
        ("rms", RMS_HINT, loss(rec(prefixes), "rms")),
        # one loss of the summed prefix reconstructions (each with b_dec, or b_dec once)
        ("sum_of_reconstructions", SUM_RECS_HINT, loss([sum(rec(prefixes))])),
        ("sum_of_reconstructions", SUM_RECS_HINT, loss([sum(rec(prefixes, bias=False)) + b])),
        ("off_by_one", "prefix m is acts[..., :m] (m latents)", loss(rec([(0, min(m + 1, d_sae)) for m in sizes]))),
        ("off_by_one", "prefix m is acts[..., :m] (m latents)", loss(rec([(0, m - 1) for m in sizes]))),
        (
            "running_reconstruction",
            "each prefix is its own reconstruction, acts[..., :m] · W_dec[:, :m] + b_dec: don't add it on top of "
            "the previous prefix's (a running sum counts the first latents once per prefix)",
            loss([b + sum(rec(prefixes[: j + 1], bias=False)) for j in range(len(prefixes))]),
        ),
        (
            "target_full_reconstruction",
            "compare every prefix reconstruction with h itself, not the inner prefixes with the full reconstruction",
            sum(
                (r - (h if m == sizes[-1] else rec([(0, d_sae)])[0])).pow(2).mean(-1)
                for r, m in zip(rec(prefixes), sizes, strict=True)
            ),
        ),
    ]


def prefix_on_inst(impl: Callable, args: tuple, sizes: tuple[int, ...], n_inst: int, others: tuple[int, ...]) -> Any:
    """impl(*args); an error where a prefix size met the instance count is named (a prefix sliced on the inst axis,
    W_dec_normalized[:m], instead of the latent axis). `others` are the other axis sizes, so a size they share with
    a prefix is not taken for one."""
    try:
        return impl(*args)
    except RuntimeError as err:
        sizes_seen = {int(a or b) for a, b in re.findall(r"size (\d+)|\((\d+)\)", str(err))}
        prefixes = [m for m in sizes if m in sizes_seen and m != n_inst and m not in others]
        if n_inst not in sizes_seen or not prefixes:
            raise
        described = describe_error(err)
        fail(
            f"{described.message}\n(size {prefixes[0]} is a prefix size m, size {n_inst} is n_inst)",
            "a prefix slice met the instance axis: the prefix belongs on the latent axis, acts[..., :m] and "
            "W_dec_normalized[:, :m] ([inst d_sae d_in]: W_dec_normalized[:m] slices the instances)",
            code="prefix_on_inst",
        )


def absorption_probes(impl: Callable, inputs: tuple) -> None:
    """Changes of the inputs that leave the absorption fraction exactly as it is (checked on the reference):
    rescaling feature directions or decoder rows by powers of 2 (cosines), reordering the latents, rescaling
    active activations (only acts > 0 counts). A learner's output that moves under one of them names the rule
    it breaks."""
    features, acts, W_dec, W_feat, parent_of = inputs
    gen = torch.Generator().manual_seed(11)
    pow2 = lambda *shape: (2.0 ** torch.randint(-2, 3, shape, generator=gen).float()).to(acts.device)
    perm = torch.stack([torch.randperm(acts.shape[-1], generator=gen) for _ in range(acts.shape[1])]).to(acts.device)
    permuted = lambda p: (
        features,
        acts.gather(-1, p[None].expand_as(acts)),
        W_dec.gather(1, p[..., None].expand_as(W_dec)),
        W_feat,
    )
    parent_cols = (torch.tensor(parent_of) == -1).to(features)  # [feats]: 1 for a parent, 0 for a child
    probes = [
        (
            "feature_norms",
            (features, acts, W_dec, W_feat * pow2(W_feat.shape[0], 1, W_feat.shape[2])),
            "the columns of W_features were rescaled (by powers of 2, per instance and feature)",
            "a cosine doesn't depend on norms: normalise each feature direction over d_in, W_features / "
            "W_features.norm(dim=1, keepdim=True) (W_features is [inst d_in feats]; another axis mixes instances "
            "or features)",
        ),
        (
            "decoder_norms",
            (features, acts, W_dec * pow2(W_dec.shape[0], W_dec.shape[1], 1), W_feat),
            "the rows of W_dec were rescaled (by powers of 2, per instance and latent)",
            "a cosine doesn't depend on norms: normalise each decoder row over d_in, W_dec / W_dec.norm(dim=-1, "
            "keepdim=True) (W_dec is [inst d_sae d_in])",
        ),
        (
            "latent_order",
            permuted(perm[:1].expand_as(perm)),
            "the latents were reordered the same way in every instance (acts' last axis and W_dec's rows together)",
            "the right fraction doesn't depend on the latents' order, so some latent is picked by its position, not "
            "by its cosines. Possible causes: the parent's latent read from another axis (cos is [inst d_sae feats]: "
            "cos[:, :, p].argmax(-1) is an argmax over d_sae, cos[:, p] is latent p's row), an index off by one "
            "(e.g. latent lat + 1 excluded from the carriers instead of lat itself), a latent fixed by number, or "
            "the FIRST latent with cosine ≥ cos_threshold taken as the parent's latent (argmax of a boolean mask, "
            "nonzero()[0]) instead of the one with the largest cosine, cos[:, :, p].argmax(-1)" + FEAT_CAUSE,
        ),
        (
            "instance_latent",
            permuted(perm),
            "the latents were reordered differently in each instance (a reordering shared by all instances "
            "changed nothing)",
            "",  # cross_instance_hint: which instances read another instance's latents
        ),
        (
            "carriers_counted",
            (features, torch.cat([acts, acts], -1), torch.cat([W_dec, W_dec], 1), W_feat),
            "every latent was duplicated (acts and the rows of W_dec concatenated with a copy)",
            "observed: your fraction grew when every latent got a twin. Possible causes, e.g.: an absorbed example "
            "counted once per carrier (.sum(-1) over the carriers where .any(-1) belongs), a product of two fractions "
            "instead of the share of examples where both hold (the parent's latent off AND some carrier active)",
        ),
        (
            "non_cases",
            (torch.cat([features, features * parent_cols, 0 * features]), torch.cat([acts] * 3), W_dec, W_feat),
            "the batch was extended with two copies of its examples, one with only the parents on, one with every "
            "feature off (no new case)",
            "only the cases count, in the numerator as in the denominator: absorbed = cases & parent latent off & "
            "carried (an example without the parent and a child is never absorbed)",
        ),
        (
            "activation_values",
            (features, acts * pow2(*acts.shape), W_dec, W_feat),
            "the positive activations were rescaled (by powers of 2, each on its own)",
            "only which latents are active (acts > 0) matters: the parent's latent is off when its activation is 0, "
            "and an example is carried when ANY other active latent has cosine ≥ cos_threshold with the parent "
            "(not only the most active latent, and not weighted by activation)",
        ),
    ]
    try:
        base = impl(*(t.clone() for t in inputs[:4]), list(parent_of), cos_threshold=0.3)
    except Exception:
        return
    if not isinstance(base, Tensor) or not torch.isfinite(base).all():
        return
    right = ref_absorption(features, acts, W_dec, W_feat, parent_of)
    feature_index_excluded(base, features, acts, W_dec, W_feat, list(parent_of), right)
    for code, args, change, hint in probes:
        try:
            out = impl(*(t.clone() for t in args), list(parent_of), cos_threshold=0.3)
        except Exception:
            continue
        if not isinstance(out, Tensor) or out.shape != base.shape:
            continue
        if not torch.allclose(ref_absorption(*args, parent_of), right, rtol=1e-5, atol=1e-6):
            continue  # not an invariance of these inputs (never expected: the pytest suite checks it)
        if not torch.allclose(out.detach().to(base.dtype), base.detach(), rtol=1e-4, atol=1e-5):
            feature_index_excluded(out, *args, list(parent_of), ref_absorption(*args, parent_of), change)
            if code == "instance_latent":
                hint = cross_instance_hint(impl, inputs[:4], perm, list(parent_of), base)
            if code == "carriers_counted":
                code, hint = copies_verdict(base, out, hint, product_fraction(*inputs[:4], list(parent_of)))
            fail(
                f"on random inputs, your absorption fraction changed when {change}, which leaves the right one "
                f"as it is ({moved_entries(base, out)})",
                hint,
                code=code,
            )


def ref_absorption(features: Tensor, acts: Tensor, W_dec: Tensor, W_feat: Tensor, parent_of: list[int]) -> Tensor:
    return absorption_fraction(features, acts, W_dec, W_feat, list(parent_of), 0.3)


def _short(t: Tensor) -> list[float]:
    return [round(v, 4) for v in t.detach().flatten()[:4].tolist()]


def all_zero(out: Tensor, expected: Tensor, what: str) -> None:
    """The learner's fraction is 0 everywhere where it shouldn't be: the possible causes."""
    if not out.any() and expected.any():
        fail(
            f"{what} is 0 everywhere, expected {[[round(v, 3) for v in row] for row in expected.tolist()]}",
            "no example counts as absorbed, which has four possible causes: no example counts as a case (a case "
            "has the parent and AT LEAST ONE of its children on: .any(-1) over its children, or sum >= 1), or the "
            "absorbed conditions never hold (the parent's latent OFF, activation 0, while another active latent "
            "has decoder cosine ≥ cos_threshold with the parent; the parent's latent is chosen by decoder cosine, "
            "as one chosen by its activation is always on); or the cosines are wrong (norms taken over another axis "
            "than d_in, or NaN from a zero norm: W_features is [inst d_in feats], W_dec [inst d_sae d_in]); or the "
            "counts were divided with // (floor division rounds every fraction below 1 down to 0)",
            code="all_zero",
        )


def graft(base: type, impl: Any, name: str, helpers: dict[str, Any]) -> type:
    """A subclass of `base` with the learner's method `name`.

    The helpers in `helpers` that the method calls by global name (e.g. `batch_topk`) are swapped for the
    reference's, so only the method itself is the learner's code."""
    try:
        attr = inspect.getattr_static(impl, name)
    except AttributeError:
        fail(
            f"{getattr(impl, '__name__', impl)!r} has no `{name}`",
            f"pass the class that defines `{name}`",
            code="missing",
        )
    fn = attr
    if isinstance(fn, types.FunctionType) and any(h in fn.__code__.co_names for h in helpers):
        fn = types.FunctionType(
            fn.__code__, {**fn.__globals__, **helpers}, fn.__name__, fn.__defaults__, fn.__closure__
        )
        fn.__kwdefaults__ = attr.__kwdefaults__
    return type(f"Learner{base.__name__}", (base,), {name: fn})


def fresh_start(make: Callable[[type], Any], cls: type, ref_cls: type, h: Tensor) -> None:
    """The threshold starts at 0 (as __init__ leaves it) and the first training call is one moving-average step
    from there, like every other: 0 + THRESHOLD_MOMENTUM · min_kept. The main check starts from non-zero
    thresholds, so a special case for a threshold still at 0 (a warm start) shows only here."""
    sae, right = make(cls), make(ref_cls)
    with torch.no_grad():
        sae.threshold.zero_()
        right.threshold.zero_()
    sae.train()
    right.train()
    right.encode(h)
    sae.encode(h)
    got, want = sae.threshold.detach(), right.threshold.detach()
    if got.shape != want.shape or torch.allclose(got, want, rtol=1e-3, atol=1e-7):
        return
    min_kept = want / ref_cls.THRESHOLD_MOMENTUM
    if torch.allclose(got, min_kept, rtol=1e-3, atol=1e-7):
        fail(
            f"from a fresh SAE (self.threshold all 0, as __init__ leaves it), the first training call set the "
            f"threshold to min_kept = {_short(min_kept)} itself, expected one moving-average step "
            f"{_short(want)} = THRESHOLD_MOMENTUM · min_kept",
            "no special case for a threshold still at 0 (a warm start that jumps to the first batch's min_kept): "
            "every call, the first included, moves it threshold + THRESHOLD_MOMENTUM · (min_kept - threshold)",
            code="warm_start",
        )
    fail(
        f"from a fresh SAE (self.threshold all 0, as __init__ leaves it), the first training call moved the "
        f"threshold to {_short(got)}, expected {_short(want)} = THRESHOLD_MOMENTUM · min_kept (calls from a "
        "non-zero threshold were right)",
        "the update must not depend on whether the threshold is still 0: threshold + THRESHOLD_MOMENTUM · "
        "(min_kept - threshold) on every call (no initialisation from the first batch, no test on 0)",
        code="fresh_threshold",
    )


def rates_followed(impl: Callable, x: Tensor, cfg: HierarchyConfig, what: str, device: Any) -> None:
    """check_rates, and when a parent's or a child's rate is off (no pattern named, or the two probabilities
    swapped, which a fixed number can mimic), a probe: the same call with that probability changed in the config.
    A rate that stays where it was, whichever probability changes, doesn't read its config field."""
    try:
        check_rates(x, cfg, what)
    except CheckFailed as err:
        child = "frequency of a child" in err.message
        if err.code in ("parent_frequency", "child_frequency", "swapped_probabilities"):
            _field_ignored(impl, x, cfg, ("p_parent", "p_child")[child], ("p_child", "p_parent")[child], device)
        raise


def _pooled_rate(x: Tensor, cfg: HierarchyConfig, field: str) -> tuple[Tensor, Tensor]:
    """(hits, counts): every parent pooled (p_parent), or each child index pooled given its parent (p_child)."""
    on = x.bool()
    parents = on[..., : cfg.n_parents]
    if field == "p_parent":
        return parents.sum().reshape(1), torch.tensor([parents.numel()])
    grouped = on[..., cfg.n_parents :].unflatten(-1, (cfg.n_parents, cfg.n_children))
    return grouped.sum((0, 1, 2)), parents.sum().expand(cfg.n_children)


def _probed_rate(impl: Callable, x: Tensor, cfg: HierarchyConfig, field: str, changed: str, device: Any):
    """(new value of `changed`, the rate `field` governs in a batch drawn with it), or None if the call fails."""
    old = getattr(cfg, changed)
    new = old / 2 if changed == "p_child" else (0.75 if old < 0.5 else 0.2)  # p_child / 2 keeps exclusive valid
    other = dataclasses.replace(cfg, **{changed: new})
    try:
        y = impl(other, x.shape[0], device)
    except Exception:
        return None
    if not isinstance(y, Tensor) or y.shape != x.shape:
        return None
    hits, counts = _pooled_rate(y.detach().cpu(), other, field)
    return new, hits / counts.clamp_min(1), counts


def _field_ignored(impl: Callable, x: Tensor, cfg: HierarchyConfig, field: str, other: str, device: Any) -> None:
    hits, n1 = _pooled_rate(x.cpu(), cfg, field)
    r1 = hits / n1.clamp_min(1)
    tol = lambda n, p: torch.tensor([RateStats.tolerance(int(c), float(p)) for c in n])
    probed = _probed_rate(impl, x, cfg, field, field, device)
    if probed is None:
        return
    new, r2, n2 = probed
    stays = lambda r, n: bool(((r - r1).abs() <= tol(n1, r1.mean()) + tol(n, r.mean())).all())
    if not stays(r2, n2) or not bool(((r2 - new).abs() > tol(n2, new)).any()):
        return  # it follows its field
    crossed = _probed_rate(impl, x, cfg, field, other, device)
    if crossed is None or not stays(*crossed[1:]):
        return  # it follows the other probability: the catalogue's diagnosis (swapped) stands
    fail(
        f"the {RATE_LABEL[field]} stays at {r1.mean().item():.2%} when cfg.{field} changes from {getattr(cfg, field)} "
        f"to {new} (expected {new:.0%} then), and when cfg.{other} changes{no_child_rate(x.cpu(), cfg, field)}",
        f"the rate doesn't follow cfg.{field}: a fixed number where cfg.{field} belongs (the text's example value, "
        "or the default's?)",
        code=f"{field}_ignored",
    )
