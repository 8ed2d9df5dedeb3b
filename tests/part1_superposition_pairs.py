"""Part 1's correlated and anticorrelated pairs: name a wrong pair from the rates of its two features.

A pair generator's output tells more than "one feature of a pair present without the other": each of the two
features' presence rates follows some function of the pair's probability p (p, 2p, 1 - p, always ...), and which one
says which feature's mask went wrong. These checks run before the layout diagnoses (pairs on the wrong features),
which only permute draws of rate p and so never explain a feature that is always present or present at 2p.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import product

import torch
from torch import Tensor

from solutions.part1_superposition import ToyModelConfig
from tests.checking import bernstein_tolerance, fail
from tests.part1_superposition_blocks import empty_block_failure, tiled_p_failure
from tests.part1_superposition_probes import DELTA, consistent

# 2 correlated pairs, 5 anticorrelated pairs, 6 uncorrelated features, 3 instances, d_hidden 9: no two of n_corr,
# n_anti, 2 n_corr, 2 n_anti, n_corr + n_anti, n_uncorr, n_inst, d_hidden are equal, so each block offset or length
# written with the wrong count gives its own size. The second feature of each pair has its own (unused) probability,
# so a slice that picks the wrong members or the wrong offset shows up in the rates.
P_COMBINED = torch.tensor(
    [
        [
            0.2,
            0.55,
            0.4,
            0.05,
            0.3,
            0.42,
            0.1,
            0.15,
            0.25,
            0.6,
            0.4,
            0.07,
            0.12,
            0.33,
            0.65,
            0.08,
            0.85,
            0.3,
            0.5,
            0.13,
            0.23,
            0.58,
        ],
        [
            0.5,
            0.12,
            0.05,
            0.33,
            0.15,
            0.02,
            0.35,
            0.48,
            0.05,
            0.21,
            0.2,
            0.52,
            0.45,
            0.1,
            0.25,
            0.7,
            0.45,
            0.6,
            0.09,
            0.38,
            0.64,
            0.17,
        ],
        [
            0.35,
            0.6,
            0.15,
            0.27,
            0.22,
            0.09,
            0.4,
            0.03,
            0.3,
            0.14,
            0.08,
            0.37,
            0.28,
            0.66,
            0.55,
            0.18,
            0.72,
            0.1,
            0.4,
            0.62,
            0.26,
            0.47,
        ],
    ]
)
N_CORR, N_ANTI, D_HIDDEN = 2, 5, 9
BLOCK_SIZES = (N_CORR, N_ANTI, P_COMBINED.shape[1] - 2 * (N_CORR + N_ANTI))  # each block's pairs or features


def rate_laws(p: Tensor) -> list[tuple[str, str, Tensor]]:
    """(label, how a learner writes it, table) for the functions of p a presence rate is compared with."""
    return [
        ("p", "p", p),
        ("2p", "2 * p", (2 * p).clamp(max=1)),
        ("p/2", "p / 2", p / 2),
        ("p²", "p ** 2", p**2),
        ("2p²", "2 * p ** 2", (2 * p**2).clamp(max=1)),
        ("1 - p", "1 - p", 1 - p),
        ("1 - 2p", "1 - 2 * p", (1 - 2 * p).clamp(min=0)),
        ("√p", "p ** 0.5", p.sqrt()),
        ("p(1 - p)", "p * (1 - p)", p * (1 - p)),
        ("1/2", "0.5", torch.full_like(p, 0.5)),
        ("1 (always)", "1", torch.ones_like(p)),
        ("0 (never)", "0", torch.zeros_like(p)),
    ]


def law_of(rates: Tensor, p: Tensor, n: int) -> str | None:
    """The label of the only law of p that `rates` [inst pairs] (n draws each) follow, or None (none, or several)."""
    found = [label for label, _, table in rate_laws(p.double()) if consistent(rates, table, n)]
    return found[0] if len(found) == 1 else None


def _split(present: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    first, second = present[..., 0::2], present[..., 1::2]
    return first, second, first.double().mean(0), second.double().mean(0)


def _shown(rates: Tensor) -> str:
    return ", ".join(f"{float(r):.1%}" for r in rates.flatten()[:4])


def correlated_pair_failure(present: Tensor, p: Tensor, what: str, allowance: int) -> None:
    """(Correlated pairs, some feature present without its partner) one feature of every pair at rate p and the other
    always present, or present exactly when the first is absent: name which feature's mask is wrong."""
    tiled_p_failure(present, p, what, f"{what}: one feature of a pair is present without the other")
    n = present.shape[0]
    first, second, r1, r2 = _split(present)
    laws = {"first": law_of(r1, p, n), "second": law_of(r2, p, n)}
    message = (
        f"{what}: the first feature of each pair is present in {_shown(r1)}... of examples (rate {laws['first'] or '?'}"
        f"), the second in {_shown(r2)}... (rate {laws['second'] or '?'}), for pair probabilities p = {_shown(p)}..."
    )
    for a, b in (("first", "second"), ("second", "first")):
        if laws[a] == "p" and laws[b] == "1 (always)":
            fail(
                message,
                f"the {b} feature of every pair is always present: the pair's presence mask is applied to the {a} "
                f"feature only (values[..., {'0' if a == 'first' else '1'}::2] masked, the other slice never): mask "
                "both features with the same draw (both strided slices, or repeat_interleave(2, dim=-1) on the mask)",
                code="pair_one_unmasked",
            )
    for a, b in (("first", "second"), ("second", "first")):
        on_a, on_b = (first, second) if a == "first" else (second, first)
        if laws[a] == "p" and laws[b] == "p²" and int((on_b & ~on_a).sum()) <= allowance:
            fail(
                message + f"; the {b} is never on without the {a}",
                f"the {b} feature is drawn again given the {a} ({b} = {a} & (rand < p): rate p · p = p²): a correlated "
                "pair has ONE draw, rand < p of shape [batch, inst, pairs], given to both features (repeat_interleave)",
                code=f"{b}_drawn_again",
            )
        off_a = (~on_a).double().sum(0)
        alone = (on_b & ~on_a).double().sum(0) / off_a.clamp(min=1)  # P(b on | a off), from >= min(off_a) draws
        if laws[a] == "p" and int((on_a & ~on_b).sum()) <= allowance and consistent(alone, p, int(off_a.min())):
            fail(
                message + f"; the {b} is on whenever the {a} is, and without it at rate p",
                f"the {b} feature has a draw of its own besides the pair's ({b} = {a} | (rand < p): rate 2p - p²): a "
                "correlated pair has ONE draw, rand < p of shape [batch, inst, pairs], given to both features",
                code=f"{b}_own_draw",
            )
    if laws["first"] == "p" and laws["second"] == "1 - p" and int((first == second).sum()) <= allowance:
        fail(
            message + "; the two features are never on (or off) together",
            "the second feature is present exactly when the first is absent (rate 1 - p): it is masked with the "
            "complement (~present, 1 - present, as in an anticorrelated pair); a correlated pair gives both features "
            "the same mask (present)",
            code="pair_complement",
        )


def anticorrelated_pair_failure(present: Tensor, p: Tensor, what: str, message: str) -> None:
    """(Anticorrelated pairs, both features of a pair seen on together) one feature present at 2p (the pair's active
    rate) and the other at p, never on without it: the fair coin picks only one of the two."""
    n = present.shape[0]
    first, second, r1, r2 = _split(present)
    laws = {"first": law_of(r1, p, n), "second": law_of(r2, p, n)}
    for a, b in (("first", "second"), ("second", "first")):
        on_a, on_b = (first, second) if a == "first" else (second, first)
        if laws[a] == "2p" and laws[b] == "p" and not bool((on_b & ~on_a).any()):
            fail(
                f"{message}; the {a} feature of each pair is present in {_shown(r1 if a == 'first' else r2)}... of "
                f"examples (2p, the pair's active rate, for p = {_shown(p)}...), the {b} at p, and the {b} is never "
                f"on without the {a}",
                f"the {a} feature is 'pair active' itself: the fair coin was applied to the {b} feature only ({a} = "
                f"active, {b} = active & coin). Give the {a} the other side of the coin: {a} = active & ~coin, {b} = "
                "active & coin, so exactly one of the two is on when the pair is active",
                code=f"{a}_is_active",
            )
    both = (first & second).double().mean(0)
    if laws["first"] == laws["second"] == "p" and consistent(both, p / 2, n) and not consistent(both, p * p, n):
        fail(
            f"{message}; each feature is present at p (p = {_shown(p)}...) and both at once in {_shown(both)}... of "
            "examples, p/2: half of the pair's active rate 2p, as if each feature of an active pair had its own coin",
            "the fair coin is drawn per feature ([batch, inst, 2 * pairs]), not per pair: with a coin each, both "
            "features of an active pair are on a quarter of the time (and neither another quarter). Draw one coin per "
            "pair ([batch, inst, pairs]): first = active & coin, second = active & ~coin",
            code="coin_per_feature",
        )


def active_law_candidates(p: Tensor) -> list[tuple[str, str, Tensor]]:
    """Anticorrelated rate tables [inst 2*pairs] when the pair is active with another function of p than 2p (a fair
    coin then puts each feature at half of it): the laws the catalogue does not already hold."""
    return [
        (
            "active_rate_law",
            f"each feature is present at {label}/2, half of what a pair active with probability {label} gives: the "
            f"'pair active' draw uses {expr} where 2 * p belongs (rand < 2 * p, then a fair coin picks one feature)",
            table.repeat_interleave(2, dim=1) / 2,
        )
        for label, expr, table in rate_laws(p)
        if label in ("p²", "p/2", "1 - p", "√p")  # 2p² gives p² per feature, presence_p_squared
    ] + [
        (
            "anti_thresholds_swapped",
            f"the {first} feature of each pair is present at p and the {second} at 1/2 - p (never both): two "
            "mistakes give exactly these rates — the two thresholds swapped (the pair's activity drawn with "
            f"probability 1/2 and the choice of feature with 2p), or the {second} feature's condition negated as a "
            f"whole (~active & ~coin: the {second} is on when the pair is INACTIVE, where active & ~coin belongs). "
            "The pair is active with probability 2p (rand < 2 * p), then a fair coin (rand < 1/2) picks one of the "
            "two: first = active & coin, second = active & ~coin",
            torch.stack([a, b], dim=-1).flatten(-2),
        )
        for first, second, a, b in (("first", "second", p, 0.5 - p), ("second", "first", 0.5 - p, p))
    ]


def _kinds(present: Tensor, n_pairs: int, allowance: int) -> list[str]:
    first, second = present[..., 0 : 2 * n_pairs : 2], present[..., 1 : 2 * n_pairs : 2]
    kinds = []
    for j in range(n_pairs):
        if int((first[..., j] != second[..., j]).sum()) <= allowance:
            kinds.append("together")
        elif not bool((first[..., j] & second[..., j]).any()):
            kinds.append("never")
        else:
            kinds.append("independent")
    return kinds


def count_mixup_failure(out: object, cfg: object, what: str, allowance: int) -> None:
    """A combined batch with the wrong number of features: predict the shape and pair layout that each mix-up of the
    two count fields gives (strided slices of p, as the exercise builds them) and name the one the output matches."""
    n_feats, nc, na = cfg.n_features, cfg.n_correlated_pairs, cfg.n_anticorrelated_pairs
    if not isinstance(out, Tensor) or out.ndim != 3 or out.shape[-1] == n_feats:
        return
    fields = {"n_correlated_pairs": nc, "n_anticorrelated_pairs": na}
    seen = out.shape[-1]
    present = out.detach().cpu() != 0
    matches = []
    for (fc, c), (fa, a) in product(fields.items(), repeat=2):
        if (fc, fa) == ("n_correlated_pairs", "n_anticorrelated_pairs"):
            continue
        corr = len(range(0, min(2 * c, n_feats), 2))
        anti = len(range(2 * c, min(2 * (c + a), n_feats), 2))
        unc = max(0, n_feats - 2 * (c + a))
        if 2 * (corr + anti) + unc != seen:
            continue
        layout = ["together"] * corr + ["never"] * anti
        fits = _kinds(present, corr + anti, allowance) == layout if corr + anti else True
        matches.append((fits, fc, fa, c, a, corr, anti, unc))
    fitting = [m for m in matches if m[0]]
    if len(fitting) == 1:
        _, fc, fa, c, a, corr, anti, unc = fitting[0]
        fail(
            f"{what} has {seen} features, expected {n_feats}; its blocks are what n_corr = cfg.{fc} ({c}) and n_anti "
            f"= cfg.{fa} ({a}) give: {corr} correlated pair(s) (p[:, 0 : 2 * {c} : 2]), {anti} anticorrelated "
            f"(p[:, {2 * c} : {2 * (c + a)} : 2] of {n_feats} columns), {unc} uncorrelated",
            "the block sizes are read from the wrong config field: n_corr = self.cfg.n_correlated_pairs and n_anti = "
            "self.cfg.n_anticorrelated_pairs, each from its own field",
            code="pair_counts",
        )
    if matches:
        listed = "; ".join(f"n_corr = cfg.{fc}, n_anti = cfg.{fa}" for _, fc, fa, *_ in matches)
        fail(
            f"{what} has {seen} features, expected {n_feats} (= 2 * {nc} + 2 * {na} + {n_feats - 2 * (nc + na)})",
            f"a count read from the wrong config field gives this many features ({listed}), but the pairs are not "
            "laid out as that would give; possible causes: a block sized from the wrong field, or a slice boundary of "
            "p off by one. Size the blocks from self.cfg.n_correlated_pairs and self.cfg.n_anticorrelated_pairs",
            code="pair_counts",
        )


def unwritten_columns_failure(present: Tensor, message: str, allowance: int) -> None:
    """(A pair generator whose pairs are broken) some features are never present in any example: nothing was written
    there. Every pair probability of the checks is >= 0.05, so a correct column of 20000 draws is empty with
    probability below 0.95^20000. When the empty ones are features n_pairs + 1 .. 2 n_pairs - 1 of every instance and
    features n_pairs - 1 and n_pairs share their draws, the pairs were written at stride 1 (columns j, j + 1)."""
    n, _, f = present.shape
    never = ~present.any(0)  # [inst feats]
    if not bool(never.any()):
        return
    cols = sorted({int(c) for c in never.nonzero()[:, 1]})
    everywhere = bool((never == never[0]).all())
    shown = ", ".join(map(str, cols[:6])) + (" ..." if len(cols) > 6 else "")
    where = "of every instance " if everywhere else ""
    observed = f"{message}; feature(s) {shown} {where}are never present (0 in all {n} examples)"
    m = f // 2
    stride_one = (
        everywhere
        and m >= 2
        and never[0].tolist() == [c > m for c in range(f)]
        and int((present[..., m - 1] != present[..., m]).sum()) <= allowance
    )
    if stride_one:
        rest = f"feature {m + 1} is" if m + 1 == f - 1 else f"features {m + 1} to {f - 1} are"
        fail(
            observed + f", and features {m - 1} and {m} share one draw",
            f"the pairs are written overlapping, at stride 1: pair j went to features j and j + 1 (out[..., j:j + 2]) "
            f"instead of 2j and 2j + 1 (out[..., 2 * j:2 * j + 2]), so each pair overwrites the previous pair's second "
            f"feature and {rest} never written (a feature never written stays 0)",
            code="pairs_overlapping",
        )
    fail(
        observed,
        "a feature that is never written stays 0: possible causes: pairs written at the wrong positions (a loop "
        "writing pair j at j where 2 * j was meant, slices that overlap or stop short), a slice or reshape that leaves "
        "features out, or a mask that is never true there. Pair j occupies the adjacent features 2j and 2j + 1",
        code="unwritten_features",
    )


def block_width_failure(
    out: object, method: str, field: str | None, p: Tensor, n_samples: int, cfg: object = None
) -> None:
    """A generator's block with the wrong number of features: one column per pair (or half the pairs with two columns
    each, the same count when n_pairs is even: told apart by whether adjacent columns behave as pairs), an
    uncorrelated block with two columns per probability (a pair generator's layout), or a pair count read from the
    model's config `cfg` (whose counts differ from p's: the checker's model counts no pairs)."""
    if not isinstance(out, Tensor) or out.ndim != 3 or tuple(out.shape[:2]) != (n_samples, p.shape[0]):
        return
    w, n = out.shape[-1], p.shape[1]
    counted = getattr(cfg, field, None) if field else None
    if isinstance(counted, int) and counted != n and w != 2 * n and w in (counted, 2 * counted):
        fail(
            f"{method}(n, p) has shape {tuple(out.shape)}, expected (batch={n_samples}, inst={p.shape[0]}, "
            f"feats=2 * n_pairs = {2 * n}), with p of shape {tuple(p.shape)}",
            f"{w} is {'2 · ' if w == 2 * counted and w else ''}cfg.{field} (this model's config counts {counted}): "
            "take the number of pairs from p.shape[1] (the block the function is given), not from the config "
            "(generate_batch passes each generator its slice of the probabilities)",
            code="block_shape",
        )
    present = out.detach().cpu() != 0
    pairs = w % 2 == 0 and w > 0
    a, b = present[..., 0::2], present[..., 1::2]
    together = pairs and int((a != b).sum()) <= 2 and bool(a.any())
    never = pairs and not bool((a & b).any()) and bool((a | b).any())
    if field and w == n:
        expected = f"(batch={n_samples}, inst={p.shape[0]}, feats=2 * n_pairs = {2 * n})"
        head = f"{method}(n, p) has shape {tuple(out.shape)}: {w} features, n_pairs of them, expected {expected}"
        rule = together if field == "n_correlated_pairs" else never
        if rule:
            fail(
                f"{head}; its features 2j and 2j + 1 behave as pairs ({'always' if together else 'never'} on "
                f"together), so it holds {w // 2} pair(s) of two features, not {n}",
                f"half the pairs are drawn: p holds one probability per PAIR (its {n} columns), so p[:, ::2] (p read "
                "as if it had one column per feature) or a slice such as p[:, : n_pairs // 2] drops half of them. Use "
                "every column of p: n_pairs = p.shape[1], and the block has 2 * n_pairs features",
                code="pairs_subsampled",
            )
        fail(
            head,
            "one column per pair: the second feature of each pair is missing (pair j is the two adjacent features 2j "
            "and 2j + 1, and each needs its own column: "
            + (
                "both present together: repeat_interleave(2, dim=-1) on the pair mask"
                if field == "n_correlated_pairs"
                else "at most one of them present: stack the two masks on a last axis, then flatten"
            )
            + ", or two columns per pair in a loop); or p was read per feature (p[:, ::2]) and half the pairs are "
            "drawn",
            code="one_per_pair",
        )
    if not field and w == 2 * n:
        seen = (
            "features 2j and 2j + 1 are always on together (the correlated generator's body?)"
            if together
            else "features 2j and 2j + 1 are never on together (the anticorrelated generator's body?)"
            if never
            else "two columns per probability"
        )
        fail(
            f"{method}(n, p) has shape {tuple(out.shape)}: {w} features, twice the {n} columns of p, expected "
            f"(batch={n_samples}, inst={p.shape[0]}, feats={n}); {seen}",
            "twice the feature count: that is a pair generator's layout (repeat_interleave(2, dim=-1), or two masks "
            "stacked and flattened, as in generate_correlated_features / generate_anticorrelated_features). The "
            "uncorrelated generator draws one feature per column of p: shape [batch, inst, p.shape[1]], each present "
            "with its own p",
            code="uncorrelated_pair_layout",
        )


def _shared_draw_groups(present: Tensor, allowance: int) -> tuple[list[list[int]], int]:
    """Groups of (inst, feature) columns [inst * feats + feature] whose presence agrees in all but `allowance`
    examples (the same draw, bar values drawn as exactly 0), and how many columns agree so with a column other than
    their adjacent partner (features 2j, 2j + 1 of one instance). Two independent columns of >= 10^4 draws at rates
    in [0.05, 0.95] never agree that closely."""
    n, k, f = present.shape
    cols = present.reshape(n, k * f).T.float()
    differ = cols @ (1 - cols).T + (1 - cols) @ cols.T  # [C C] number of examples where two columns differ
    same = differ <= allowance
    idx = torch.arange(k * f)
    elsewhere = same.clone()
    elsewhere[idx, idx] = False
    elsewhere[idx, idx ^ 1] = False
    label = list(range(k * f))

    def root(a: int) -> int:
        while label[a] != a:
            a = label[a]
        return a

    for a, b in same.nonzero().tolist():
        label[root(a)] = root(b)
    groups: dict[int, list[int]] = {}
    for a in range(k * f):
        groups.setdefault(root(a), []).append(a)
    return sorted(groups.values()), int(elsewhere.any(1).sum())


def _within_instance(groups: list[list[int]], k: int, f: int) -> list[list[int]] | None:
    """The partition of features every instance shares (feature lists), or None when a group spans instances or
    the instances are grouped differently."""
    if any(len({c // f for c in g}) > 1 for g in groups):
        return None
    per = [sorted([c % f for c in g] for g in groups if g[0] // f == i) for i in range(k)]
    return per[0] if all(q == per[0] for q in per) else None


def _offset_partitions(f: int) -> list[list[list[int]]]:
    """The feature partitions a pair index (arange(f) ± 1) // 2 gives, clamped into range or wrapped around."""
    found = []
    for shift in (1, -1):
        raw = (torch.arange(f) + shift).div(2, rounding_mode="floor")
        for idx in (raw.clamp(0, f // 2 - 1), raw % (f // 2)):
            found.append(sorted([j for j in range(f) if idx[j] == v] for v in idx.unique().tolist()))
    return found


def twins_elsewhere(present: Tensor, message: str, allowance: int) -> None:
    """Each shared presence draw landed on features that are not a pair: most columns share their draw with a column
    that is not their adjacent partner. Say which features share one draw; name a pair index off by one (features
    2j + 1 and 2j + 2 together, pair j's draw one feature late or early) apart from a reshape that mixes the inst and
    pair axes (groups spanning instances), and otherwise describe the grouping without blaming either."""
    _, k, f = present.shape
    groups, misplaced = _shared_draw_groups(present, allowance)
    if misplaced < k * f / 2:
        return
    within = _within_instance(groups, k, f)
    if within is None:
        shown = [g for g in groups if len(g) > 1][:3]
        seen = "; ".join(" and ".join(f"(inst {c // f}, feature {c % f})" for c in g) for g in shown)
        across = any(len({c // f for c in g}) > 1 for g in groups)
        fail(
            f"{message}; instead presence is shared by features that are not a pair: {seen}",
            (
                "the pairs' presence draws land on the wrong features, across instances: a stack or cat followed "
                "by a reshape (or view) that mixes the `inst` and pair axes into each other (torch.stack([m, m], "
                "dim=1).reshape(...)); "
                if across
                else "the pairs' presence draws land on different features in different instances; "
            )
            + "put the copy last and adjacent to its pair: repeat_interleave(2, dim=-1), or einops.repeat(m, 'b i p "
            "-> b i (p two)', two=2)",
            code="pair_layout",
        )
    seen = "; ".join(
        ("features " + ", ".join(map(str, g)) + " share one draw") if len(g) > 1 else f"feature {g[0]} has its own"
        for g in within
    )
    if within in _offset_partitions(f):
        fail(
            f"{message}; instead, in every instance, {seen}: features 2j + 1 and 2j + 2 are paired",
            "the pair index is off by one: pair j's draw reaches features 2j + 1 and 2j + 2, or 2j - 1 and 2j (an "
            "index such as (arange(2 * n_pairs) + 1) // 2 or (arange(2 * n_pairs) - 1) // 2, clamped or wrapped at "
            "the ends, or a roll by one feature), where pair j is the adjacent features 2j and 2j + 1: index with "
            "arange(2 * n_pairs) // 2, or repeat_interleave(2, dim=-1) on the pair mask",
            code="pair_index_offset",
        )
    fail(
        f"{message}; instead, in every instance, {seen}",
        "the index or pattern that copies each pair's draw to its features picks the wrong features (pair j is the "
        "adjacent features 2j and 2j + 1, and only those two share its draw): build it with arange(2 * n_pairs) // "
        "2, repeat_interleave(2, dim=-1), or einops.repeat(m, 'b i p -> b i (p two)', two=2)",
        code="pair_layout",
    )


def max_scaled_failure(draw: Callable[[int], object], method: str, calls: int = 3, n: int = 4) -> None:
    """Values rescaled so the largest is 1 (x / x.max(), over the batch or per feature): in small batches (n = 4) the
    largest U[0, 1] draw is visibly below 1, so a value of exactly 1.0 in every one of `calls` calls shows the rescaling
    (in a batch of 20000 its max is 0.9999 and the change is invisible). torch.rand draws from [0, 1) and never gives
    1; a correct 1 - torch.rand gives exactly 1 with probability 2^-24 per value, at most 48 values per call here
    (4 examples x 3 instances x 4 features), so every one of 3 calls holding a 1 has probability below (3e-6)^3."""
    ones = []
    for _ in range(calls):
        out = draw(n)
        if not isinstance(out, Tensor) or not out.is_floating_point() or out.device.type == "meta":
            return
        ones.append(int((out.detach() == 1).sum()))
        if ones[-1] == 0:
            return
    fail(
        f"{method}({n}, p) holds a value of exactly 1.0 in each of {calls} calls ({', '.join(map(str, ones))} of "
        "them): "
        f"U[0, 1) draws never reach 1, and in a batch of {n} the largest draw is usually well below it",
        "the values were rescaled so that the largest is 1: divided by their maximum (x / x.max(), over the batch, "
        "an instance or a feature), or clamped at 1 (values that reach past 1, min(·, 1)). Use the uniform draws "
        "as they are: torch.rand(...) where the feature is present",
        code="values_max_scaled",
    )


def pair_layout_failure(present: Tensor, nc: int, na: int, message: str, pair_kinds: Callable) -> None:
    """The combined batch's pairs are laid out wrong: read how many pairs are on together, then how many are never
    both on, off the whole batch, and name the counts (config fields or p slices) that give those numbers. The
    config's counts are all different, so each count names its source."""
    kinds = pair_kinds(present, present.shape[-1] // 2)
    t = next((j for j, kind in enumerate(kinds) if kind != "together"), len(kinds))
    a = next((j for j, kind in enumerate(kinds[t:]) if kind != "never"), len(kinds) - t)
    if (t, a) == (nc, na) or t + a == 0:
        return
    causes = []
    if t == na != nc:
        causes.append("the correlated block sized by n_anticorrelated_pairs (or given the anticorrelated slice of p)")
    if a == nc != na:
        causes.append("the anticorrelated block sized by n_correlated_pairs (or given the correlated slice of p)")
    if not causes:
        return
    fail(
        f"{message}; read from the pair structure: {t} correlated pairs (expected {nc}), then {a} anticorrelated "
        f"(expected {na})",
        ("the two counts are swapped: " if len(causes) == 2 else "")
        + "; ".join(causes)
        + ": size each block from its own config field, n_corr = self.cfg.n_correlated_pairs and "
        "n_anti = self.cfg.n_anticorrelated_pairs, and give each generator its own slice of p",
        code="pair_counts",
    )


def zero_count_failure(generate: Callable, config: Callable, p: Tensor, what: str, pair_kinds: Callable) -> None:
    """The combined batch with one of the two pair counts 0 (allowed: each block may be empty): the other blocks must
    stay. `generate(cfg, p)` draws a batch from the learner's class (reference generators); `config(**fields)` builds
    the config. A block that appears only when the *other* count is nonzero (a copy-pasted `if n_anti:` guard around
    the correlated block, or the blocks built inside one loop over the anticorrelated pairs) is caught here."""
    n_inst = p.shape[0]
    for nc, na, n_feats in ((2, 0, 7), (0, 3, 8)):
        cfg = config(n_inst=n_inst, n_features=n_feats, d_hidden=5, n_correlated_pairs=nc, n_anticorrelated_pairs=na)
        out = generate(cfg, p[:, :n_feats].clamp(max=0.45))
        if not isinstance(out, Tensor) or out.ndim != 3 or out.shape[1] != n_inst:
            continue
        kinds = pair_kinds(out.detach().cpu() != 0, out.shape[-1] // 2)
        want = ["together"] * nc + ["never"] * na
        if out.shape[-1] == n_feats and kinds[: nc + na] == want:
            continue
        t = next((j for j, kind in enumerate(kinds) if kind != "together"), len(kinds))
        a = next((j for j, kind in enumerate(kinds[t:]) if kind != "never"), len(kinds) - t)
        zero, kept = ("n_anticorrelated_pairs", "correlated") if na == 0 else ("n_correlated_pairs", "anticorrelated")
        seen = f"{out.shape[-1]} features, read from the pair structure: {t} correlated pair(s), {a} anticorrelated"
        if out.shape[-1] == n_feats - 2 * (nc + na):
            fail(
                f"{what} with n_correlated_pairs={nc}, n_anticorrelated_pairs={na} has {seen}, expected {n_feats} "
                f"features with {nc} correlated and {na} anticorrelated pair(s)",
                f"with {zero} = 0 your {kept} block is missing too: is it built or appended only under a condition "
                "on the other count (an `if n_anti:` / `if n_corr:` copied from the other block, or one loop over "
                "the other block's pairs)? Each block depends on its own count only; an empty block is fine",
                code="block_needs_other_count",
            )
        fail(
            f"{what} with n_correlated_pairs={nc}, n_anticorrelated_pairs={na} has {seen}, expected {n_feats} "
            f"features with {nc} correlated and {na} anticorrelated pair(s)",
            f"with {zero} = 0 (an empty block) the other blocks must stay as they are: size each block from its own "
            "count, and let a count of 0 give an empty block",
            code="zero_count",
        )


def pair_sum_failure(batch: Tensor, first: Tensor, what: str) -> None:
    """The two values of every present correlated pair sum to one constant: the values were normalised within the pair
    (v / v.sum(-1)) or one was computed from the other (1 - v). Correct values are independent U[0, 1], whose sum has
    standard deviation sqrt(2 / 12) ≈ 0.41 and a density at most 1, so k ≥ 100 sums all within ±1e-3 of their median
    happen with probability below 0.002^(k - 1): never."""
    sums = (batch[..., 0::2] + batch[..., 1::2])[first].double()
    if sums.numel() < 100:
        return
    c = float(sums.median())
    if float((sums - c).abs().max()) > 1e-3:
        return
    fail(
        f"{what}: the two values of every present pair sum to {c:.4g} ({sums.numel()} present pairs)",
        f"the pair's values are made dependent (normalised to sum to {c:.3g}, or one computed from the other as "
        f"{c:.3g} - v): the pair shares presence only; draw each value independently from U[0, 1] (torch.rand with "
        "the full [batch, inst, 2 * pairs] shape)",
        code="values_dependent",
    )


def _partners(present: Tensor, rule: str) -> list[int] | None:
    """For instance 0 of a batch [n inst 2m]: each feature's partner, the one other feature it is always on with
    ('together') or never on with ('never'); None when some feature has no single such partner."""
    cols = present[:, 0].T.double()  # [2m n]
    tie = (cols[:, None, :] == cols[None, :, :]).all(-1) if rule == "together" else (cols @ cols.T) == 0
    tie.fill_diagonal_(False)
    if not bool((tie.sum(1) == 1).all()):
        return None
    return tie.double().argmax(1).tolist()


def wide_pair_layout_failure(cls: type, method: str, device: torch.device) -> None:
    """A pair generator called with 5 pairs (2 instances): with 1 or 2 pairs the permutations '(two m) -> (m two)'
    and its inverse '(m two) -> (two m)' coincide, with 5 no two layouts do. Each feature of instance 0 must have its
    adjacent partner (2j, 2j + 1): always on together (correlated) or never (anticorrelated). At rate 0.3 two
    independent or non-partner columns of 3000 draws are on together about 270 times (never with probability below
    e^-200), and a correlated non-partner differs from it about 1260 times."""
    empty_block_failure(cls, method, device)
    if method not in ("generate_correlated_features", "generate_anticorrelated_features"):
        return
    rule = "together" if method == "generate_correlated_features" else "never"
    m, k = 5, 2
    key = "n_correlated_pairs" if rule == "together" else "n_anticorrelated_pairs"
    try:
        model = cls(ToyModelConfig(n_inst=k, n_features=2 * m, d_hidden=3, **{key: m}), device=device)
        out = getattr(model, method)(3000, torch.full((k, m), 0.3, device=device))
    except NotImplementedError:
        raise
    except Exception:
        return
    if not isinstance(out, Tensor) or tuple(out.shape) != (3000, k, 2 * m):
        return
    partner = _partners(out.detach() != 0, rule)
    if partner is None or partner == [j ^ 1 for j in range(2 * m)]:
        return
    ids = torch.arange(m).repeat(2).view(m, 2).T.reshape(-1)  # cat([first, second]) then '(m two) -> (two m)'
    inverse = [next(i for i in range(2 * m) if i != j and ids[i] == ids[j]) for j in range(2 * m)]
    seen = [(j, b) for j, b in enumerate(partner) if j < b][:4]
    fail(
        f"{method}(n, p) with {m} pairs: the pairs are not adjacent features; "
        + "; ".join(
            f"features {a} and {b} are {'on together' if rule == 'together' else 'never on together'}" for a, b in seen
        ),
        "pair j must occupy the adjacent features 2j and 2j + 1 (the checker's main call had only 2 pairs, where some "
        "wrong layouts coincide with the right one): "
        + (
            "this is torch.cat([first, second], -1) rearranged with the inverse permutation '(m two) -> (two m)': "
            "rearrange the cat as '(two m) -> (m two)', or stack on a last axis and flatten '(m two)'"
            if partner == inverse
            else "stack the two features on a new last axis and flatten '(pair two)' (or repeat_interleave(2, dim=-1))"
        ),
        code="pair_layout",
    )


def pair_values_independent_failure(batch: Tensor, first: Tensor, what: str) -> None:
    """The two values of a present correlated pair are independent: E[(v1 - 1/2)(v2 - 1/2)] = 0.

    The product lies in [-1/4, 1/4] (range 1/2) with variance (1/12)^2 for independent U[0, 1] values; Bernstein at
    failure probability DELTA (part 1's share of FAILURE_PROBABILITY per statistic) bounds the pooled mean."""
    v1, v2 = batch[..., 0::2][first].double(), batch[..., 1::2][first].double()
    if v1.numel() < 100:
        return
    cov = float(((v1 - 0.5) * (v2 - 0.5)).mean())
    tol = bernstein_tolerance(v1.numel(), (1 / 12) ** 2, 0.5, DELTA)
    if abs(cov) > tol:
        fail(
            f"{what}: the two values of a present pair have covariance {cov:.4f}; independent draws give 0 ± {tol:.4f}",
            "the two features of a pair share presence only: draw each one's value independently (rand with the "
            "full [batch, inst, 2 * pairs] shape), not one from the other (1 - v, v / 2 ...)",
            code="values_dependent",
        )
