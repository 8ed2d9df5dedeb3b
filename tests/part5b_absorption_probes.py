"""Part 5b's probes on a learner's BatchTopK SAE (moved out of part5b_absorption_diagnosis for its size)."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from solutions import part5b_absorption as ref
from tests.checking import CheckFailed, fail
from tests.part5b_absorption_axes import decoder_axis
from tests.part5b_absorption_budget import budget_text
from tests.part5b_absorption_ema import factor_of_repeated_steps, repeated_steps, silent_instance_moved
from tests.part5b_absorption_error_powers import error_powers
from tests.part5b_absorption_kept_values import kept_values_moved
from tests.part5b_absorption_normalised import normalised_prefixes
from tests.part5b_absorption_prefix_targets import shared_cut_failure, target_slips
from tests.part5b_absorption_prefix_weights import weighted_prefixes
from tests.part5b_absorption_slip_pairs import eval_pairs, matryoshka_pairs
from tests.part5b_absorption_topk_rules import topk_kept_rules


def where_swapped(sae: Any, before: Tensor, right: Tensor, batch: Tensor, b_dec0: Tensor) -> None:
    """When a training call left self.threshold where it was but it should have moved, a probe on a copy: a batch in
    which only instance 0 keeps nothing (h = b_dec there). If exactly that instance's threshold moves, the two
    branches of torch.where(has_any, updated, self.threshold) are swapped."""
    th = sae.threshold.detach()
    if th.shape != before.shape or not torch.equal(th, before) or torch.equal(right, before):
        return
    probe = copy.deepcopy(sae)
    silent = batch.clone()
    silent[:, 0] = b_dec0
    try:
        probe.encode(silent)
    except Exception:
        return
    moved = probe.threshold.detach() != before  # NaN and inf count as moved
    if bool(moved[0]) and not bool(moved[1:].any()):
        fail(
            "self.threshold kept its old value after a training call in which every instance kept positive "
            f"activations, and moved (to {probe.threshold[0].item():.4g}) at instance 0 only in a batch where "
            "instance 0 alone kept nothing",
            "the branches of torch.where are swapped: torch.where(has_any, updated, self.threshold) moves the "
            "instances that kept something and leaves the others",
            code="where_swapped",
        )


def shuffled(out: Tensor, expected: Tensor, what: str) -> None:
    """Nonzero exactly where expected is, holding the same multiset of values, but not in their places: the
    indices were reordered apart from the values (a sort of topk's indices, values from another call). A
    layout slip (reshape for rearrange) moves the kept positions too, so it never lands here."""
    kept = expected != 0
    if torch.equal(out, expected) or not torch.equal(out != 0, kept):
        return
    if not torch.equal(out[kept].sort().values, expected[kept].sort().values):
        return
    fail(
        f"{what} keeps the right entries, but each holds another kept entry's value",
        "scatter topk's values back with topk's own indices, in the same order: sorting or reordering one of "
        "them without the other shuffles the values among the kept entries (or keep pre * mask)",
        code="values_shuffled",
    )


def best_kept_too(out: Tensor, pre: Tensor, expected: Tensor, what: str) -> None:
    """The top k·batch of each instance, plus each example's largest latent kept as well (at least one per
    example): more than k·batch entries wherever an example's best is outside the budget. Also: the right
    entries kept, but their values shuffled among them (indices reordered apart from their values)."""
    shuffled(out, expected, what)
    best = pre == pre.amax(-1, keepdim=True)
    union = torch.where((expected != 0) | best, pre, torch.zeros_like(pre))
    if torch.equal(union, expected) or not torch.equal(out, union):
        return
    extra = int((best & (expected == 0)).sum())
    fail(
        f"{what} keeps the top k·batch of each instance plus {extra} more: each example's largest latent, kept "
        "even where it falls outside the budget",
        "keep exactly the k·batch largest entries of each instance, over all its examples and latents together: "
        "an example may keep no latent at all (no guaranteed one per example)",
        code="best_per_example",
    )


def matryoshka_slips(acts: Tensor, W: Tensor, b: Tensor, h: Tensor, sizes: tuple[int, ...]) -> list:
    """More matryoshka_loss mistakes: one prefix's loss alone (a `return` inside the loop, or the total overwritten),
    the latents after each prefix (acts[..., m:]), the squared error averaged over the instances too."""
    d_sae = acts.shape[-1]
    rec = lambda lo, hi: torch.einsum("bis,isd->bid", acts[..., lo:hi], W[:, lo:hi]) + b
    per = lambda lo, hi: (rec(lo, hi) - h).pow(2).mean(-1)
    rows = [
        (
            "after_prefix",
            "that decodes the latents AFTER each prefix, acts[..., m:] with W_dec[:, m:]: prefix m is the first m "
            "latents, acts[..., :m] with W_dec[:, :m]",
            sum(per(m, d_sae) for m in sizes),
        ),
        *[
            (
                "prefix_ends_mismatched",
                f"that decodes the {acts_end} m activations with the {rows_end} m decoder rows ({code}): the "
                "activations and the decoder rows of a prefix are the same latents, the FIRST m of both, "
                "acts[..., :m] with W_dec_normalized[:, :m] (a negative slice takes the prefix from the wrong end)",
                sum((torch.einsum("bis,isd->bid", a_of(m), w_of(m)) + b - h).pow(2).mean(-1) for m in sizes),
            )
            for acts_end, rows_end, code, a_of, w_of in (
                ("first", "LAST", "acts[..., :m] with W_dec[:, -m:]", lambda m: acts[..., :m], lambda m: W[:, -m:]),
                ("LAST", "first", "acts[..., -m:] with W_dec[:, :m]", lambda m: acts[..., -m:], lambda m: W[:, :m]),
            )
            if min(sizes) < d_sae  # at m = d_sae both ends are the whole
        ],
        (
            "target_normalised",
            "that is the error against h normalised per example (h / |h|): the target is h itself, as it is: "
            "(acts[..., :m] · W_dec[:, :m] + b_dec - h)²",
            sum((rec(0, m) - h / h.norm(dim=-1, keepdim=True)).pow(2).mean(-1) for m in sizes),
        ),
        (
            "mean_over_instances",
            "each prefix's squared error was averaged over the instances as well as d_in (every instance gets the "
            "same loss): average over d_in only, .mean(-1), keeping [batch inst]",
            sum((rec(0, m) - h).pow(2).mean((-2, -1))[:, None].expand_as(h[..., 0]) for m in sizes),
        ),
        *[
            (
                "error_variance",
                "that is the VARIANCE of each prefix's error over d_in (its mean subtracted, e.g. .var(-1)): the "
                "loss is the mean of the squared error itself, (acts[..., :m] · W_dec[:, :m] + b_dec - h)².mean(-1)",
                sum((rec(0, m) - h).var(-1, unbiased=unbiased) for m in sizes),
            )
            for unbiased in (False, True)
        ],
    ]
    if min(sizes) < d_sae:  # at m = d_sae the rescaling is by 1
        rows.append(
            (
                "prefix_rescaled",
                "that rescales each prefix's activations by d_sae / m (acts[..., :m] · d_sae / m, as dropout "
                "rescales what it keeps): a prefix decodes its first m activations as they are, "
                "acts[..., :m] · W_dec[:, :m] + b_dec, with no rescaling",
                sum(
                    (torch.einsum("bis,isd->bid", acts[..., :m] * (d_sae / m), W[:, :m]) + b - h).pow(2).mean(-1)
                    for m in sizes
                ),
            )
        )
    if len(sizes) > 1:
        rows += [
            (
                "one_prefix_only",
                f"that is the loss of the {which} prefix (m = {m}) alone: "
                + (
                    "a `return` inside the loop returns after the first prefix; "
                    if which == "first"
                    else "the total overwritten in the loop (`total = ...` where `total += ...` was meant)? "
                )
                + "sum the losses of every m in prefix_sizes, then return",
                per(0, m),
            )
            for which, m in (("first", sizes[0]), ("last", sizes[-1]))
        ]
    rows += error_powers(acts, W, b, h, sizes)
    rows += normalised_prefixes(acts, W, b, h, sizes) + target_slips(acts, W, b, h, sizes)
    return rows + matryoshka_pairs(acts, W, b, h, sizes)  # two catalogued slips at once


def other_momentum(before: Tensor, after: Tensor, right: Tensor, m: float, what: str, kept: Any = None) -> None:
    """The threshold moved towards the right target (the minimum kept activation) by one common factor other than
    THRESHOLD_MOMENTUM: name that factor (e.g. (threshold + min_kept) / 2 is an EMA with factor 0.5).

    The implied factor per instance is change / (min_kept - threshold), where min_kept - threshold =
    (right - before) / m; the catalogued factors (1 - m: the weights swapped, 1: no EMA, 0: not updated) are left
    to the catalogue's hints."""
    silent_instance_moved(before, after, right, kept, what)  # round BA: named before any reading of the others
    if after.shape != before.shape or not torch.isfinite(after).all():
        return
    step = (right - before).double() / m  # min_kept - threshold, per instance (0 where nothing was kept)
    moved = step.abs() > 1e-3
    if int(moved.sum()) < 2:
        return
    factor = (after - before).double()[moved] / step[moved]
    f = float(factor.mean())
    # 1e-3 relative: float32 rounding of threshold + f·step is ~1e-7 of values ~1, against steps >= 1e-3
    if not torch.allclose(factor, torch.full_like(factor, f), rtol=1e-3, atol=1e-4):
        return
    if any(abs(f - c) <= 1e-3 * max(abs(c), 1e-3) for c in (m, 1 - m, 1.0, 0.0)):
        return
    factor_of_repeated_steps(f, m, what)
    fail(
        f"the change of self.threshold {what} is {f:.4g} × (min kept − threshold) at every instance, expected "
        f"THRESHOLD_MOMENTUM = {m:g} × (min kept − threshold)",
        f"your update is an EMA step with factor {f:.4g}"
        + (" (the average (threshold + min_kept) / 2)" if abs(f - 0.5) < 1e-3 else "")
        + f": use the class's THRESHOLD_MOMENTUM (self.THRESHOLD_MOMENTUM = {m:g}), threshold ← threshold + "
        "THRESHOLD_MOMENTUM · (min_kept − threshold)",
        code="momentum",
    )


def other_k(pre: Tensor, k: int, batch_topk: Any, cfg: Any = None, calls: Any = ()) -> list[tuple[str, str, Tensor]]:
    """batch_topk with another per-example budget than cfg.k; the config fields holding that budget (read back
    from `cfg`) are named, and nothing else is guessed."""
    return [
        (
            "topk_budget",
            f"that is batch_topk(pre, k={other}): {other}·batch entries kept per instance, expected k = cfg.k = {k}"
            + budget_text(other, k, cfg, calls),
            batch_topk(pre, other),
        )
        for other in range(1, 2 * k + 2)
        if other != k
    ]


# ---------------------------------------------------------------- fresh15: the generator's counts and draws
def exclusive_draw_candidates(j: Tensor, pc: float, nc: int) -> list[tuple[Tensor, str, str]]:
    """Exclusive children's rates given the parent (over child index `j`) for two more ways of drawing: u from a
    standard normal (child j fires at Φ((j + 1)·p) − Φ(j·p)), independent draws with every child of a parent
    dropped when more than one fired (each at p·(1 − p)^(n_children − 1)), and a multinomial over the children and
    'none' with weights [p, ..., p, 1 − p] (each at p / (n·p + 1 − p)))."""
    phi = lambda x: 0.5 * (1 + torch.erf(x / 2**0.5))
    normal = phi((j + 1) * pc) - phi(j * pc)
    alone = pc * (1 - pc) ** (nc - 1)
    any_fired = 1 - (1 - pc) ** nc
    return [
        (
            torch.full_like(j, any_fired / nc),
            f"every child fires at (1 − (1 − p_child)^n_children) / n_children = {any_fired / nc:.1%} given its "
            "parent, never two together: some child fires whenever any of n_children independent draws at p_child "
            f"does ({any_fired:.1%}), and then each one equally often. That is what independent draws give with "
            "ONE of the children that fired kept at random (or 'any fired' decided first, then a uniform child). "
            "Each child should fire with p_child: draw ONE uniform u per parent, child j when u is in "
            "[j·p_child, (j + 1)·p_child), none above n_children·p_child",
            "exclusive_random_kept",
        ),
        (
            normal,
            "the children's rates follow a standard NORMAL's CDF: child j fires at Φ((j + 1)·p_child) − Φ(j·p_child) "
            f"({', '.join(f'{v:.1%}' for v in normal.tolist())}), so u was drawn with torch.randn where "
            "torch.rand (uniform on [0, 1)) was meant: child j when u is in [j·p_child, (j + 1)·p_child)",
            "randn_not_rand",
        ),
        (
            torch.full_like(j, alone),
            f"every child fires at p_child·(1 − p_child)^(n_children − 1) = {alone:.1%}: independent draws per "
            "child, with all the children of a parent dropped when more than one fired (only the examples where "
            "exactly one fired keep it). That makes the rate smaller than p_child: draw ONE uniform u per parent "
            "and pick child j when u is in [j·p_child, (j + 1)·p_child)",
            "exclusive_dropped_together",
        ),
        (
            torch.full_like(j, pc / (nc * pc + 1 - pc)),
            f"every child fires at p_child / (n_children·p_child + 1 − p_child) = {pc / (nc * pc + 1 - pc):.1%} given "
            "its parent: the choice among the children and 'none' was drawn with weights [p_child, ..., p_child, "
            "1 − p_child] (torch.multinomial normalises them). The weight of 'none' is 1 − n_children·p_child, so "
            "that each child keeps p_child: [p_child] * n_children + [1 − n_children·p_child]",
            "none_weight",
        ),
    ]


FEATURE_PROBE = {"n_inst": 7, "n_parents": 3, "n_children": 5, "d_in": 19}  # all formulas below differ on it


def _count_formulas() -> list[tuple[str, Callable[[Any], int], str]]:
    fields = ("n_parents", "n_children", "n_inst", "d_in")
    rows: list[tuple[str, Callable[[Any], int], str]] = []
    for x in fields:
        if x != "n_children":
            rows.append(
                (
                    f"cfg.n_parents + cfg.n_parents·cfg.{x}",
                    lambda c, x=x: c.n_parents + c.n_parents * getattr(c, x),
                    f"the children per parent counted with cfg.{x} where cfg.n_children belongs (an arange, range, "
                    "shape or loop bound over the wrong field)",
                )
            )
        if x != "n_parents":
            rows.append(
                (
                    f"cfg.{x} + cfg.{x}·cfg.n_children",
                    lambda c, x=x: getattr(c, x) + getattr(c, x) * c.n_children,
                    f"the parents counted with cfg.{x} where cfg.n_parents belongs",
                )
            )
    return [
        *rows,
        ("cfg.n_parents·cfg.n_children", lambda c: c.n_parents * c.n_children, "the parents' own columns missing"),
        ("cfg.n_parents", lambda c: c.n_parents, "the children's columns missing"),
        (
            "cfg.n_parents + cfg.n_children",
            lambda c: c.n_parents + c.n_children,
            "n_children children in all, where each parent has its own n_children",
        ),
        (
            "cfg.n_parents + cfg.n_parents·(cfg.n_children + 1)",
            lambda c: c.n_parents * (c.n_children + 2),
            "one child too many per parent (a range off by one)",
        ),
    ]


def feature_count(impl: Callable, cfg: Any, out: Any, n: int, what: str, device: Any) -> None:
    """A [batch inst feats] output whose feats axis has the wrong size: the count formulas over the config's fields
    that give it, on `cfg` and on a probe config where every formula gives a different size."""
    if not isinstance(out, Tensor) or out.dim() != 3 or tuple(out.shape[:2]) != (n, cfg.n_inst):
        return
    size = out.shape[2]
    if size == cfg.n_features:
        return
    fits = [row for row in _count_formulas() if row[1](cfg) == size]
    if not fits:
        return
    probe = dataclasses.replace(cfg, **FEATURE_PROBE, p_child=min(cfg.p_child, 1 / FEATURE_PROBE["n_children"]))
    seen = ""
    try:
        other = impl(probe, 64, device)
    except Exception:
        other = None
    if isinstance(other, Tensor) and other.dim() == 3:
        fits = [row for row in fits if row[1](probe) == other.shape[2]] or fits
        seen = (
            f" (and {other.shape[2]} on a config with n_parents={probe.n_parents}, n_children={probe.n_children}, "
            f"n_inst={probe.n_inst}, d_in={probe.d_in}: the same formula)"
        )
    causes = "; or ".join(f"{size} = {f}: {why}" for f, _, why in fits)
    fail(
        f"{what} has shape {tuple(out.shape)}, expected (batch={n}, inst={cfg.n_inst}, feats={cfg.n_features})",
        f"the feats axis has {size} columns{seen}: {causes}? There are n_parents + n_parents·n_children = "
        f"cfg.n_features = {cfg.n_features} features: the parents, then n_children children per parent",
        code="feature_count",
    )


# ---------------------------------------------------------------- fresh15: absorption carriers over the batch
def carrier_scope(impl: Callable, inputs: tuple, parent_of: list[int], th: float, out: Tensor, variant: Any) -> None:
    """When the output matches 'no carrier needed' on the hand-built case, where some carrier of every parent is
    active somewhere in the batch: a probe tells that apart from a carrier looked for anywhere in the BATCH instead
    of in the same example. Every carrier is silenced, then one extra example with no feature on has them all
    active in instances 1 and up: only an any-over-the-batch carrier counts there, and nothing counts at inst 0."""
    decoder_axis(impl, inputs, parent_of, th, out, variant)  # 'decoder unnormalised' told from another axis
    features, acts, W_dec, W_feat = inputs
    none = variant(features, acts, W_dec, W_feat, parent_of, th, carriers="none")
    if out.shape != none.shape or not torch.allclose(out, none.to(out.device), rtol=1e-4, atol=1e-5):
        return
    carrier_activity(impl, inputs, parent_of, th, variant)
    cos = torch.einsum(
        "isd,idf->isf", W_dec / W_dec.norm(dim=-1, keepdim=True), W_feat / W_feat.norm(dim=1, keepdim=True)
    )
    parents = [f for f, q in enumerate(parent_of) if q == -1]
    own = torch.zeros(cos.shape[:2], dtype=torch.bool, device=cos.device)
    for p in parents:
        own.scatter_(1, cos[..., p].argmax(1, keepdim=True), True)
    carriers = (cos[..., parents] >= th).any(-1) & ~own  # [inst d_sae]
    quiet = acts.masked_fill(carriers, 0.0)
    extra = carriers.to(acts.dtype)[None].clone()
    extra[:, 0] = 0.0
    p_features = torch.cat([features, torch.zeros_like(features[:1])])
    p_acts = torch.cat([quiet, extra])
    args = (p_features, p_acts, W_dec, W_feat)
    whole = variant(*args, parent_of, th, carriers="batch")
    right = variant(*args, parent_of, th)
    if torch.allclose(whole, right) or torch.allclose(whole, variant(*args, parent_of, th, carriers="none")):
        return
    try:
        got = impl(*(t.clone() for t in args), list(parent_of), cos_threshold=th)
    except Exception:
        return
    if isinstance(got, Tensor) and got.shape == whole.shape and torch.allclose(got.detach().to(whole), whole):
        fail(
            "absorption_fraction counts a case as absorbed when a carrier is active ANYWHERE in the batch: with every "
            "carrier silenced except in one extra example with no feature on (instances 1 and up), it gives "
            f"{_rounded(got)}, expected {_rounded(right)}",
            "the carrier must be active in the same example as the case: ((acts > 0) & carriers).any(-1), a "
            "[batch inst] mask, not (acts > 0).any(0) (any over the batch axis) combined with the carriers",
            code="carrier_whole_batch",
        )


def carrier_activity(
    impl: Callable, inputs: tuple, parent_of: list[int], at: float, variant: Any, th: float = 0.9
) -> None:
    """The output matches 'no carrier needed', which an activity test that holds for every latent (acts >= 0) also
    gives wherever each parent has some carrier: cos_threshold=0.9, which no latent but the parent's own reaches on
    the hand-built case, tells them apart (no carrier at all: 0 with `acts >= 0`, the parent-off share without);
    the case with every carrier silenced (at the checker's threshold `at`) tells `>= 0` from a carrier active
    anywhere in the batch, or any other rule that needs a carrier to exist: only `>= 0` counts a silent one."""
    none, every = (variant(*inputs, parent_of, th, carriers=c) for c in ("none", "inactive"))
    if torch.allclose(none, every) or not torch.allclose(every, variant(*inputs, parent_of, th)):
        return
    features, acts, W_dec, W_feat = inputs  # and, at cos_threshold=at, every carrier silenced: only `>= 0` counts it
    cos = torch.einsum("isd,idf->isf", F.normalize(W_dec, dim=-1), F.normalize(W_feat, dim=1))
    parents = [f for f, q in enumerate(parent_of) if q == -1]
    own = torch.zeros(cos.shape[:2], dtype=torch.bool, device=cos.device)
    for p in parents:
        own.scatter_(1, cos[..., p].argmax(1, keepdim=True), True)
    quiet = (features, acts.masked_fill((cos[..., parents] >= at).any(-1) & ~own, 0.0), W_dec, W_feat)
    quiet_every = variant(*quiet, parent_of, at, carriers="inactive")
    if torch.allclose(quiet_every, variant(*quiet, parent_of, at)):
        return
    try:
        got = impl(*(t.clone() for t in inputs), list(parent_of), cos_threshold=th)
        again = impl(*(t.clone() for t in quiet), list(parent_of), cos_threshold=at)
    except Exception:
        return
    same = lambda x, y: isinstance(x, Tensor) and x.shape == y.shape and torch.allclose(x.detach().to(y), y)
    if same(got, every) and same(again, quiet_every):
        fail(
            "absorption_fraction counts every carrier, active or not: on the hand-built case it equals the fraction "
            f"with no carrier condition, yet with cos_threshold={th} (no carrier at all) it gives {_rounded(got)}, "
            f"not {_rounded(none)}; with every carrier silenced it still counts them: {_rounded(again)}",
            "a carrier must be ACTIVE in the same example: active means acts > 0, and acts >= 0 holds for every "
            "latent (activations are never negative), so ((acts > 0) & carriers).any(-1)",
            code="carrier_inactive",
        )


def _rounded(x: Tensor) -> list:
    return [[round(v, 4) for v in row] for row in x.detach().double().cpu().tolist()]


# ---------------------------------------------------------------- fresh15: batch_topk's kept pattern
TOPK_PROBE = (3, 8, 11, 2)  # batch, n_inst, d_sae, k: k·batch = 6 is below both n_inst and d_sae


def kept_pattern(impl: Callable, out: Tensor, pre: Tensor, expected: Tensor, k: int, what: str, make: Any) -> None:
    """Named patterns of kept entries: the right ones with values moved (`kept_values_moved`); the complement of the
    right ones (an inverted mask); k·batch kept per
    EXAMPLE; and when everything was kept, a probe with k·batch below n_inst and d_sae (`make(batch, n_inst,
    d_sae)` draws it) tells a slice on the instance axis from a per-example top k·batch from nothing zeroed."""
    batch, _, d_sae = pre.shape
    if torch.equal(out, torch.where(expected == 0, pre, torch.zeros_like(pre))):
        fail(
            f"{what} zeroes exactly the top k·batch entries of each instance and keeps all the others",
            "the mask is inverted: masked_fill(mask, 0) fills where mask is TRUE, so with mask = the kept entries "
            "use masked_fill(~mask, 0) (or pre * mask)",
            code="mask_inverted",
        )
    kept_values_moved(out, pre, expected, what)
    nonzero = out != 0
    batch_rows_written(out, pre, what)
    same_latents_every_example(out, pre, k, what)
    if k * batch < d_sae and (nonzero.sum(-1) == k * batch).all():
        fail(
            f"{what}: every example keeps k·batch = {k * batch} latents",
            _PER_EXAMPLE_KB,
            code="per_example",
        )
    if not nonzero.all():
        return
    pb, pi, ps, pk = TOPK_PROBE
    probe = make(pb, pi, ps)
    try:
        got = impl(probe.clone(), pk)
    except Exception:
        return
    if not isinstance(got, Tensor) or got.shape != probe.shape:
        return
    kept = got.detach() != 0
    per_inst = kept.sum((0, 2))
    where = f"on pre [{pb}, {pi}, {ps}] with k={pk} (k·batch = {pk * pb} below n_inst and d_sae)"
    if (kept.sum(-1) == pk * pb).all():
        fail(
            f"{what}: every entry is kept, and {where} every example keeps k·batch = {pk * pb} latents",
            _PER_EXAMPLE_KB + f" (here k·batch = {k * batch} ≥ d_sae = {d_sae}, so every latent was kept)",
            code="per_example",
        )
    rows = min(pk * pb, pi)
    if (per_inst[:rows] == pb * ps).all() and (per_inst[rows:] == 0).all():
        fail(
            f"{what}: every entry is kept, and {where} instances 0 to {rows - 1} keep every entry, the others none",
            "the slice [:k·batch] cut the INSTANCE axis of the sorted indices [inst, batch·d_sae] (the first "
            "k·batch rows, every index in them), not the entries: slice the last axis, argsort(...)[:, :k·batch] "
            "(or use topk(k·batch, dim=-1))",
            code="slice_wrong_axis",
        )
    budget_named(impl, what, make)


# ---------------------------------------------------------------- fresh23: a budget too large to zero anything
def nothing_zeroed(out: Tensor, k: int, what: str) -> None:
    """Every entry is non-zero: a budget of at least batch·d_sae (k·batch·n_inst, k·d_sae) or a scatter into pre
    itself; the hint names the budgets the input can't tell from the scatter (budget_named's probe tells them)."""
    batch, n_inst, d_sae = out.shape
    big = {"k·batch·n_inst": k * batch * n_inst, "k·d_sae": k * d_sae}
    large = " or ".join(f"{name} = {size}" for name, size in big.items() if size >= batch * d_sae)
    either = f"either the budget is too large ({large} ≥ batch·d_sae = {batch * d_sae} entries per instance), or "
    fail(
        f"{what}: every entry is non-zero, nothing was zeroed",
        either * bool(large) + "the kept values were scattered into pre itself or a copy of it, not into a tensor "
        "of zeros (torch.zeros_like(flat).scatter(...)): the entries outside the top k·batch must become 0",
        code="nothing_zeroed",
    )


BUDGET_PROBE = (6, 4, 25, 3)  # batch, n_inst, d_sae, k: batch·d_sae = 150 exceeds every budget below but k·d_sae


def budget_named(impl: Callable, what: str, make: Any) -> None:
    """Everything was kept: on a probe whose batch·d_sae (150) exceeds the wrong counts that hold no d_sae, every
    instance keeping the same number n of its largest entries names the budget n (k·batch·n_inst = 72, ...)."""
    pb, pi, ps, pk = BUDGET_PROBE
    probe = make(pb, pi, ps)
    try:
        got = impl(probe.clone(), pk)
    except Exception:
        return
    if not isinstance(got, Tensor) or got.shape != probe.shape or not got.is_floating_point():
        return
    flat_out = got.detach().transpose(0, 1).reshape(pi, -1)
    flat_pre = probe.transpose(0, 1).reshape(pi, -1)
    counts = (flat_out != 0).sum(-1)
    n = int(counts[0])
    top = torch.zeros_like(flat_pre).scatter(-1, flat_pre.topk(min(n, pb * ps), -1).indices, 1.0).bool()
    if not (counts == n).all() or not torch.equal(flat_out != 0, top) or not pk * pb < n < pb * ps:
        return
    budgets = {"k·batch·n_inst": pk * pb * pi, "k·d_sae": pk * ps, "k·n_inst": pk * pi, "k + batch": pk + pb}
    budgets |= {"batch·n_inst": pb * pi, "k·batch + 1": pk * pb + 1, "k·batch - 1": pk * pb - 1}
    name = next((f"{n} = {name}" for name, size in budgets.items() if size == n), f"{n}")
    fail(
        f"{what}: every entry is kept; on pre [{pb}, {pi}, {ps}] with k={pk} each instance keeps its {name} largest "
        f"entries, expected k·batch = {pk * pb}",
        f"the budget is too large (here it covers all batch·d_sae entries, so nothing was zeroed): each instance "
        f"keeps k·batch entries (k per example on average), not {name.split(' = ')[-1]}",
        code="budget",
    )


def batch_rows_written(out: Tensor, pre: Tensor, what: str) -> None:
    """Only the first n_inst examples (batch rows) hold non-zero entries: a loop over the instances that wrote
    out[i] (the batch axis) where out[:, i] was meant. The checker's batch (7) exceeds n_inst (3), so the rows
    past n_inst show it, and each written row is broadcast over the instances (out[i] = a [d_sae] row)."""
    batch, n_inst, _ = pre.shape
    nonzero = out != 0
    if batch <= n_inst or nonzero[n_inst:].any() or not nonzero[:n_inst].any():
        return
    if not all(torch.equal(out[i], out[i, :1].expand_as(out[i])) for i in range(n_inst)):
        return  # values kept in the first slots of [inst (batch d_sae)] also leave the last rows empty
    fail(
        f"{what}: only examples 0 to {n_inst - 1} (the first n_inst = {n_inst} rows of the batch axis) hold non-zero "
        f"entries, examples {n_inst} to {batch - 1} are all zero, and each of them holds the same row in every "
        "instance (one [d_sae] row broadcast over inst)",
        "a loop over the instances that writes out[i] indexes the BATCH axis (out is [batch inst d_sae]): write "
        "instance i's result to out[:, i] (or stack the per-instance results with dim=1)",
        code="loop_batch_axis",
    )


def same_latents_every_example(out: Tensor, pre: Tensor, k: int, what: str) -> None:
    """Each instance keeps whole latents: a latent is kept (pre's value) in every example or zeroed in every one,
    the same set for every example, though the right output keeps different latents in different examples. The
    ranking that picks the set is named when one statistic over the batch gives it (sum, max), else described."""
    batch = pre.shape[0]
    cols = out != 0  # [batch inst d_sae]
    if (
        batch < 2
        or not cols.any()
        or cols.all()
        or not (cols == cols[:1]).all()
        or not torch.equal(out[cols], pre[cols])
    ):
        return
    right = ref.batch_topk(pre, k) != 0
    if (right == right[:1]).all():
        return  # the right output keeps whole latents too: nothing sets this one apart
    chosen = cols[0]  # [inst d_sae]
    sizes = chosen.sum(-1).tolist()
    ranked = {"sum over the batch": pre.sum(0), "max over the batch": pre.amax(0)}
    named = [
        name
        for name, stat in ranked.items()
        if all(
            torch.equal(chosen[i], stat[i] >= stat[i].topk(int(n)).values[-1]) if n else True
            for i, n in enumerate(sizes)
        )
    ]
    by = f"the latents with the largest {' or '.join(named)} of pre" if named else "latents by some ranking"
    fail(
        f"{what}: every example keeps the same latents, instance by instance ({sizes} latents per instance, kept in "
        f"all {batch} examples and zeroed in all of them otherwise); the right output keeps different latents in "
        "different examples",
        f"your code chose {by} once per instance and kept them for every example. Batch top-k chooses ENTRIES, not "
        f"latents: the k·batch = {k * batch} largest entries of pre over the whole [batch d_sae] of an instance, so "
        "one example may keep more than k latents and another fewer: rearrange [batch inst d_sae] -> [inst (batch "
        "d_sae)], topk(k·batch, dim=-1), scatter the values back and undo the rearrangement",
        code="same_latents_every_example",
    )


_PER_EXAMPLE_KB = (
    "that is a top k·batch per example, over d_sae alone: merge batch and d_sae before the selection, "
    "[batch inst d_sae] -> [inst (batch d_sae)] (permute then reshape), so the k·batch are chosen over the "
    "whole batch of an instance, then undo it"
)


# ---------------------------------------------------------------- fresh15: the eval gate
def eval_gate_candidates(
    pre: Tensor, before_b_enc: Tensor, th: Tensor, learner: tuple | None = None
) -> list[tuple[str, str, Tensor]]:
    """Eval-mode outputs of a gate on another quantity than relu(pre): the pre-activation before b_enc. With
    `learner` = (sae, h, their output): two catalogued slips at once, and one threshold shared by every instance."""
    rows = [
        (
            "gate_before_b_enc",
            "the gate compared the pre-activation BEFORE b_enc with the threshold: compare the activation itself, "
            "relu((h - b_dec) @ W_enc + b_enc) > threshold, and keep it where it passes",
            pre * (before_b_enc > th[:, None]),
        )
    ]
    if learner is None:
        return rows
    sae, h, out = learner
    out = out.detach() if isinstance(out, Tensor) else out
    if isinstance(out, Tensor) and out.shape == pre.shape and (out != 0).any():
        kept = out != 0
        if torch.equal(out[kept], pre[kept]):  # relu(pre) kept as it is: a gate, at which threshold?
            cut = float(pre[kept].min())
            rows.append(
                (
                    "shared_threshold",
                    f"your gate is one threshold (about {cut:.3g}) for every instance: a threshold taken from one "
                    "instance, or reduced over the instances (mean, max, ...). Use each instance's own: "
                    "self.threshold[:, None] against [batch inst d_sae]",
                    pre * (pre >= cut),
                )
            )
    return rows + eval_pairs(sae, h, th)


# ---------------------------------------------------------------- fresh16: naming what a bare failure left unnamed
@contextlib.contextmanager
def unnamed(code: str, diagnose: Callable[..., None], *args: Any) -> Iterator[None]:
    """Run a check; when it fails with the bare `code` (no catalogue entry, one-change edit or generic relation
    named the mistake), `diagnose(err, *args)` may name it by calling fail; otherwise the failure stands."""
    try:
        yield
    except CheckFailed as err:
        if err.code == code:
            diagnose(err, *args)
        raise


# ---------------------------------------------------------------- fresh16: which prefixes the loss sums
def prefix_terms(err: CheckFailed, out: Tensor, args: tuple, sizes: tuple[int, ...]) -> None:
    """When the learner's loss is a sum of prefix losses with whole multiplicities (m from 0 to d_sae, each loss
    the right per-prefix loss mean_d_in((acts[..., :m] · W[:, :m] + b - h)²)), say which prefixes it summed: a
    prefix of prefix_sizes left out or counted twice, or one that isn't in prefix_sizes. Solved by least squares
    over every m, then checked exactly (rtol 1e-4), so only a true decomposition is reported."""
    acts, W, b, h = args
    d_sae = acts.shape[-1]
    with torch.no_grad():
        per = [
            (torch.einsum("bis,isd->bid", acts[..., :m], W[:, :m]) + b - h).pow(2).mean(-1).double().flatten()
            for m in range(d_sae + 1)
        ]
        basis = torch.stack(per, -1).cpu()
        y = out.detach().double().flatten().cpu()
        if basis.shape[0] <= basis.shape[1] or not torch.isfinite(y).all():
            return
        coef = torch.linalg.lstsq(basis, y[:, None]).solution.flatten().round()
        if (coef < 0).any() or coef.sum() == 0 or not torch.allclose(basis @ coef, y, rtol=1e-4, atol=1e-5):
            return weighted_prefixes(err, basis, y, tuple(sizes))
    counts = {m: int(c) for m, c in enumerate(coef.tolist()) if c}
    want = {m: sizes.count(m) for m in set(sizes)}
    if counts == want:
        return
    summed = ", ".join(f"m = {m}" + (f" ({c} times)" if c > 1 else "") for m, c in counts.items())
    notes = [f"m = {m} of prefix_sizes left out" for m in sorted(want) if m not in counts]
    notes += [f"m = {m} counted {counts[m]} times" for m in sorted(want) if counts.get(m, 0) > max(want[m], 1)]
    notes += [f"m = {m}, which isn't in prefix_sizes" for m in counts if m not in want]
    hint = (
        f"your loss is exactly the sum of the prefix losses for {summed}, with prefix_sizes={tuple(sizes)}: "
        + "; ".join(notes)
        + ". Sum the loss of every m in prefix_sizes, each once (loop over prefix_sizes itself)"
    )
    fail(err.message, hint, code="prefix_terms")


# ---------------------------------------------------------------- fresh16: the threshold follows one example
def threshold_one_example(_: CheckFailed, before: Tensor, after: Tensor, acts: Tensor, m: float, what: str) -> None:
    """The threshold's change is exactly one EMA step towards the smallest kept activation of ONE example b (the
    same b in every instance; an instance where b kept nothing stays put): name b."""
    positive = acts > 0
    per_example = torch.where(positive, acts, torch.inf).amin(-1)  # [batch inst]
    change = (after - before).detach()
    fits = []
    for b in range(acts.shape[0]):
        has = positive[b].any(-1)
        step = torch.where(has, m * (per_example[b] - before), torch.zeros_like(before))
        if has.any() and torch.allclose(change, step, rtol=1e-3, atol=1e-6):
            fits.append(b)
    if len(fits) != 1:
        repeated_steps(before, after, acts, m, what)  # several EMA steps in the call, one per example or entry
        return
    b = fits[0]
    fail(
        f"the change of self.threshold {what} is exactly one EMA step towards the smallest kept activation of "
        f"example {b} alone (acts[{b}]), in every instance where that example kept one (the others stayed put)",
        "the target is the smallest positive kept activation over the WHOLE batch and all latents of the instance: "
        "torch.where(acts > 0, acts, inf).amin(dim=(0, 2)) ([batch inst d_sae] -> [inst]), not one example's",
        code="threshold_one_example",
    )


# ---------------------------------------------------------------- fresh16: eval mode keeps only part of the gate
def eval_subset(_: CheckFailed, out: Tensor, expected: Tensor, k: int, what: str) -> None:
    """The eval output is the right one with some entries that pass the threshold set to 0 (every nonzero output
    equals the right value there). Say how many were dropped and, when the counts kept are exactly k·batch per
    instance (or k per example) wherever more passed, that a top-k was applied on top of the gate."""
    out, expected = out.detach(), expected.detach()
    nz = out != 0
    if out.shape != expected.shape or not nz.any() or not torch.equal(out[nz], expected[nz]):
        return
    dropped = int(((expected != 0) & ~nz).sum())
    if dropped == 0:
        return
    batch = out.shape[0]
    passed_inst, kept_inst = (expected != 0).sum((0, 2)), nz.sum((0, 2))
    passed_ex, kept_ex = (expected != 0).sum(-1), nz.sum(-1)
    base = (
        f"{what}: your output is the right one with {dropped} entries that pass the threshold set to 0 (every "
        "nonzero entry you return is right)"
    )
    if torch.equal(kept_inst, passed_inst.clamp(max=k * batch)) and (passed_inst > k * batch).any():
        fail(
            base + f"; each instance keeps at most k·batch = {k * batch} entries, the count of batch_topk",
            "in eval mode use the threshold INSTEAD of batch_topk, not on top of it: relu(pre) where relu(pre) > "
            "threshold, whatever the batch (batch_topk is for training only)",
            code="eval_both",
        )
    if torch.equal(kept_ex, passed_ex.clamp(max=k)) and (passed_ex > k).any():
        fail(
            base + f"; each example keeps at most k = {k} entries, a per-example top-k",
            "in eval mode use the threshold alone: relu(pre) where relu(pre) > threshold (no top-k on top of it)",
            code="eval_both",
        )
    fail(
        base,
        "eval mode keeps EVERY activation above its instance's threshold; possible causes: a top-k or another "
        "mask applied as well as the gate, or a gate on another quantity than relu(pre)",
        code="eval_dropped",
    )


# ---------------------------------------------------------------- batch_topk: a cut at another rank
def topk_cut_rank(out: Tensor, pre: Tensor, k: int, what: str) -> None:
    """Every instance keeps exactly its n largest entries, values unchanged, for one n other than k·batch: name the
    cut only when n = batch·d_sae - k·batch (+ 1): counted from the smallest end (other counts: check_topk_counts)."""
    shared_cut_failure(out, pre, k, what)
    topk_kept_rules(out, pre, k, what)
    batch, n_inst, d_sae = pre.shape
    flat_out = out.detach().transpose(0, 1).reshape(n_inst, -1)
    flat_pre = pre.detach().transpose(0, 1).reshape(n_inst, -1)
    counts = (flat_out != 0).sum(-1)
    n = int(counts[0])
    if not (counts == n).all() or n not in (batch * d_sae - k * batch, batch * d_sae - k * batch + 1):
        return
    top = torch.zeros_like(flat_pre).scatter(-1, flat_pre.topk(n, -1).indices, 1.0).bool()
    if not torch.equal(flat_out != 0, top) or not torch.equal(flat_out[top], flat_pre[top]):
        return
    total, kb = batch * d_sae, k * batch
    seen = f"{what} keeps the {n} largest entries of each instance, expected the k·batch = {kb} largest"
    if n in (total - kb + 1, total - kb):
        fail(
            seen + f" ({n} = batch·d_sae - k·batch{' + 1' if n == total - kb + 1 else ''}): the cut is the k·batch-th "
            "SMALLEST value, not the k·batch-th largest",
            "kthvalue (and sort ascending) count from the smallest: the k·batch-th largest of an instance's "
            f"{total} entries is kthvalue({total} - k·batch + 1), or take flat.topk(k·batch).values[:, -1:] as the cut",
            code="cut_from_smallest",
        )


# ---------------------------------------------------------------- matryoshka_loss: one value for the whole batch
def loss_terms(err: CheckFailed, out: Tensor, args: tuple, sizes: tuple[int, ...]) -> None:
    """The learner's loss is the same for every example of an instance (constant along batch) where the right one
    varies: the batch axis was reduced (a mean or sum over it) and broadcast back. Else prefix_terms."""
    acts, W, b, h = args
    got = out.detach()
    if got.ndim == 2 and got.shape[0] > 1 and torch.isfinite(got).all():
        flat = torch.allclose(got, got[:1].expand_as(got), rtol=1e-5, atol=1e-7)
        with torch.no_grad():
            per = sum((torch.einsum("bis,isd->bid", acts[..., :m], W[:, :m]) + b - h).pow(2).mean(-1) for m in sizes)
        if flat and not torch.allclose(per, per[:1].expand_as(per), rtol=1e-3):
            ratio = float((got[0] / per.mean(0)).mean())
            how = "the mean over the batch" if abs(ratio - 1) < 1e-3 else f"{ratio:.4g} × the mean over the batch"
            fail(
                err.message + f"; every example of an instance gets the same loss ({how} of the right ones)",
                "the batch axis was reduced and broadcast back: each prefix's squared error is averaged over d_in "
                "only, .mean(-1), one loss per example and instance [batch inst]",
                code="batch_reduced",
            )
    prefix_terms(err, out, args, sizes)
