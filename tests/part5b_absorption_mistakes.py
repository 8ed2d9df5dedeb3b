"""The catalogue of known mistakes for section 5b's checkers (`tests.part5b_absorption`).

Each builder returns what a realistic buggy implementation would return on the checker's inputs (a mutant
of the reference), with the code and hint the checker reports when a learner's output matches it; and the
frequency statistics that tell a random generator's mistakes apart.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from tests.checking import FAILURE_PROBABILITY, bernstein_tolerance, fail
from tests.part5b_absorption_draws import children_sharing_parent_draw, rates_by_child_index
from tests.part5b_absorption_edges import edges_shifted_candidate
from tests.part5b_absorption_ema import cut_value_candidates
from tests.part5b_absorption_ema_targets import ema_target_candidates
from tests.part5b_absorption_gates import gate_candidates
from tests.part5b_absorption_probes import exclusive_draw_candidates, nothing_zeroed
from utils.part5b_absorption import HierarchyConfig

# Every statistic of a configuration gets failure probability FAILURE_PROBABILITY / GEN_TESTS (a union
# bound): the two configurations of the checker run 237 tests together (135 + 102, counted with the
# cross-family ones), fewer than 400.
GEN_TESTS = 400


class RateStats:
    """Frequency tests on 0/1 draws with Bernstein tolerances; `n` may differ per entry (conditional rates)."""

    @staticmethod
    def tolerance(n: int, p: float) -> float:
        return bernstein_tolerance(max(n, 1), p * (1 - p), 1.0, FAILURE_PROBABILITY / GEN_TESTS)

    @classmethod
    def expect(
        cls,
        hits: Tensor,
        counts: Tensor,
        p: float,
        what: str,
        where: Callable[[tuple[int, ...]], str],
        diagnose: Callable[[float], tuple[str, str]],
    ) -> None:
        """hits[idx] successes out of counts[idx] independent Bernoulli(p) draws, for every idx."""
        for idx in torch.nonzero(counts > 0).tolist():
            idx = tuple(idx)
            n, k = int(counts[idx]), int(hits[idx])
            observed, tol = k / n, cls.tolerance(n, p)
            if abs(observed - p) > tol:
                hint, code = diagnose(observed)
                fail(f"{what} at {where(idx)} is {observed:.2%}, expected {p:.2%} ± {tol:.2%}", hint, code=code)


def nearest(observed: float, n: int, candidates: list[tuple[float, str, str]], default: tuple[str, str]):
    """The (hint, code) of the candidate value `observed` is statistically close to (6 standard errors), if any."""
    for value, hint, code in candidates:
        if abs(observed - value) < 6 * math.sqrt(max(value * (1 - value), 1e-4) / max(n, 1)):
            return hint, code
    return default


def normal_cdf(p: float) -> float:
    """P(N(0, 1) < p): how often `torch.randn(...) < p` fires."""
    return 0.5 * (1 + math.erf(p / math.sqrt(2)))


RANDN_HINT = (
    "the frequency is close to Φ({p}) = {v:.3f}, how often a standard NORMAL draw is below {p}: "
    "`torch.randn(...) < p` where `torch.rand(...) < p` (uniform on [0, 1)) was meant"
)


def check_rates(x: Tensor, cfg: HierarchyConfig, what: str) -> None:
    """Parent rate p_parent, child rate p_child given the parent, child marginal p_parent·p_child."""
    on = x.bool()
    n, n_inst, _ = on.shape
    pp, pc, nc = cfg.p_parent, cfg.p_child, cfg.n_children
    parents = on[..., : cfg.n_parents]  # [batch inst parent]
    grouped = on[..., cfg.n_parents :].unflatten(-1, (cfg.n_parents, nc))  # [batch inst parent child]

    def parent_diagnosis(observed: float) -> tuple[str, str]:
        return nearest(
            observed,
            n,
            [
                (
                    1 - pp,
                    "the frequency is close to 1 - p_parent: is the mask `rand > p` instead of `rand < p`?",
                    "rand_gt_p",
                ),
                (
                    pc,
                    "parents fire at the rate p_child: p_parent and p_child are swapped (cfg.p_parent is the parent's)",
                    "swapped_probabilities",
                ),
                (normal_cdf(pp), RANDN_HINT.format(p="p_parent", v=normal_cdf(pp)), "randn_not_rand"),
            ],
            (
                "parents fire more often than p_parent, which has several possible causes: the draw is not uniform "
                "on [0, 1) (use torch.rand for `rand < p`), or a parent is switched on because a child fired "
                "(parents are drawn on their own first; children only where their parent is on)"
                if observed > pp
                else "each parent fires with probability p_parent, independently per example and instance",
                "parent_frequency",
            ),
        )

    RateStats.expect(
        parents.sum(0),
        torch.full(parents.shape[1:], n),
        pp,
        f"{what}: frequency of a parent",
        lambda idx: f"inst {idx[0]}, parent {idx[1]}",
        parent_diagnosis,
    )

    cond_counts = parents.sum(0).unsqueeze(-1).expand(n_inst, cfg.n_parents, nc)  # examples with the parent on
    cond_rates = grouped.sum(0) / cond_counts.clamp_min(1)
    RateStats.expect(
        grouped.sum(0),
        cond_counts,
        pc,
        f"{what}: frequency of a child among examples where its parent fires",
        lambda idx: f"inst {idx[0]}, parent {idx[1]}, child {idx[2]}",
        lambda observed: child_rate_diagnosis(cond_rates, cond_counts, cfg),
    )
    RateStats.expect(
        grouped.sum(0),
        torch.full(grouped.shape[1:], n),
        pp * pc,
        f"{what}: frequency of a child",
        lambda idx: f"inst {idx[0]}, parent {idx[1]}, child {idx[2]}",
        lambda observed: ("a child fires with p_parent · p_child overall", "child_frequency"),
    )


def child_rate_diagnosis(rates: Tensor, counts: Tensor, cfg: HierarchyConfig) -> tuple[str, str]:
    """(hint, code) for child rates given the parent, [inst parent child], that are wrong.

    Each candidate mistake predicts the whole pattern of rates over the children (a constant for most, a
    rate that depends on the child's index for the others); it is named only when every rate fits it (within
    6 standard errors), so a coincidence at one child can't name a mistake the other children contradict."""
    pp, pc, nc = cfg.p_parent, cfg.p_child, cfg.n_children
    j = torch.arange(nc, dtype=torch.float64)
    candidates = [
        (
            1 - pc,
            "P(child | parent) is close to 1 - p_child: is the mask `rand > p` instead of `rand < p`?",
            "rand_gt_p",
        ),
        (
            pp * pc,
            "p_child is already conditional on the parent: given its parent fires, a child fires with p_child "
            "(don't multiply by p_parent again)",
            "child_double_conditioned",
        ),
        (
            pp,
            "children fire at the parent's rate p_parent: p_parent and p_child are swapped (cfg.p_child is the "
            "child's probability given its parent)",
            "swapped_probabilities",
        ),
    ]
    shared = "the children reuse the parent's random number: draw a fresh uniform for the children"
    if not cfg.exclusive:
        candidates.append((normal_cdf(pc), RANDN_HINT.format(p="p_child", v=normal_cdf(pc)), "randn_not_rand"))
    if cfg.exclusive:
        candidates += exclusive_draw_candidates(j, pc, nc)
        candidates += [edges_shifted_candidate(j, pc, s) for s in (1, -1)]
        first = pc * (1 - pc) ** j
        candidates += [
            (
                ((j + 1) * pp).clamp(0, 1).sub((j * pp).clamp(0, 1)),
                f"the children's rates follow cfg.p_parent = {pp}, not cfg.p_child: child j fires when u is in "
                "[j·p_parent, (j + 1)·p_parent), bins as wide as the wrong config field; the bins are [j·p_child, "
                "(j + 1)·p_child), so each child fires with p_child given its parent",
                "bins_of_p_parent",
            ),
            (
                pc / nc,
                "each child fires with p_child given its parent, not p_child / n_children: some child fires "
                "with probability n_children·p_child",
                "exclusive_split",
            ),
            (
                1 / nc,
                "with exclusive children, no child fires with probability 1 - n_children·p_child: "
                "don't always pick one child when the parent fires",
                "exclusive_always_one",
            ),
            (
                torch.where(j == nc - 1, 1 - (nc - 1) * pc, pc),
                "the last child takes the rest: it fires with 1 - (n_children - 1)·p_child, so some child always "
                "fires. With exclusive children no child fires with probability 1 - n_children·p_child: child j "
                "only when u is in [j·p_child, (j + 1)·p_child), the last one included (no `u >= lower` alone)",
                "exclusive_last_rest",
            ),
            (
                ((j + 1) * pc).clamp(max=pp).sub(j * pc).clamp(min=0) / pp,
                f"{shared} (given `u < p_parent`, child j fires when u is in [j·p_child, (j + 1)·p_child) ∩ "
                "[0, p_parent), so the rates depend on j). The same rates come from a second cause: edges built "
                "with p_child / p_parent (p_child read as an unconditional rate), child j when u is in "
                "[j·p_child / p_parent, (j + 1)·p_child / p_parent); p_child is already the rate given the parent",
                "shared_draw",
            ),
            *[
                (
                    pattern,
                    "keeping one child out of independent draws (the first or the last that fired) makes the rate "
                    "depend on the child's index: pick the child with ONE uniform per parent, child j when u is in "
                    "[j·p_child, (j + 1)·p_child)",
                    "exclusive_one_kept",
                )
                for pattern in (first, first.flip(0))
            ],
        ]
    else:
        rate = min(pc, pp) / pp  # a shared draw and a rate p_child / p_parent (clipped at 1) give the same law
        candidates.append(
            (
                rate,
                f"given its parent, a child fires at min(p_child / p_parent, 1) = {rate:.0%}, which has two possible "
                "causes: the children reuse the parent's random number (`u < p_child` given `u < p_parent`), or "
                "their probability is p_child / p_parent (p_child read as an unconditional rate; above 1, every "
                "time). p_child is already the rate given the parent: a fresh uniform, `rand < p_child`",
                "shared_draw",
            )
        )
    n = counts.clamp_min(1).double()
    for value, hint, code in candidates:
        expected = torch.as_tensor(value, dtype=torch.float64).expand(rates.shape)
        se = (expected * (1 - expected)).clamp_min(1e-4).div(n).sqrt()
        if ((rates.double() - expected).abs() < 6 * se).all():
            return hint, code
    found = children_sharing_parent_draw(rates, counts, cfg) or rates_by_child_index(rates, counts, cfg)
    return found or ("given its parent fires, each child should fire with probability p_child", "child_frequency")


def absorption_variant(
    features: Tensor,
    acts: Tensor,
    W_dec: Tensor,
    W_features: Tensor,
    parent_of: list[int],
    threshold: float,
    *,
    denominator: str = "cases",
    carriers: str = "active",
    signed: bool = True,
    normalise: str = "both",
    parent_latent: str = "cosine",
    strict: bool = False,
    empty: float = 0.0,
    parent_off: bool = True,
    counts: bool = False,
    cases_rule: str = "any",
    children_rule: str = "own",
    off_rule: str = "zero",
    pooled: bool = False,
    exclude_all: bool = False,
    numerator: str = "cases",
    combine: str = "and",
    stale_parent: bool = False,
) -> Tensor:
    """The reference computation with one rule changed: what a known mistake returns."""
    parent_off_arg = parent_off
    dec = W_dec / W_dec.norm(dim=-1, keepdim=True) if normalise in ("both", "dec", "feat_axis") else W_dec
    feat = (
        W_features / W_features.norm(dim=1, keepdim=True) if normalise in ("both", "feat", "dec_axis") else W_features
    )
    if normalise == "dec_axis":  # decoder rows normalised over the latents (dim 1) instead of d_in
        dec = W_dec / W_dec.norm(dim=1, keepdim=True).clamp_min(1e-12)  # F.normalize: a zero column stays 0
    if normalise == "feat_axis":  # feature directions normalised over the features (dim -1) instead of d_in
        feat = W_features / W_features.norm(dim=-1, keepdim=True)
    cos = torch.einsum("isd,idf->isf", dec, feat)
    score = cos if signed else cos.abs()
    n_inst = acts.shape[1]
    out = []
    for p in [f for f, q in enumerate(parent_of) if q == -1]:
        d = parent_of.index(-1) if stale_parent else p  # the first parent's direction reused for every parent
        children = [f for f, q in enumerate(parent_of) if (q == p if children_rule == "own" else q != -1)]
        parent_on = features[..., p] > 0
        kids_on = features[..., children] > 0
        n_on = kids_on.sum(-1)
        if cases_rule == "child_only":  # the parent not required
            cases = n_on >= 1
        elif cases_rule == "or":
            cases = parent_on | (n_on >= 1)
        else:
            rule = {"all": kids_on.all(-1), "two": n_on > 1, "any": n_on >= 1, "one": n_on == 1}[cases_rule]
            cases = parent_on & rule
        if parent_latent == "cosine":
            latent = score[:, :, d].argmax(-1).expand(acts.shape[0], -1)  # [batch inst]
        elif parent_latent == "abs_cosine":  # the largest |cosine| (carriers still by the signed cosine)
            latent = score[:, :, d].abs().argmax(-1).expand(acts.shape[0], -1)
        elif parent_latent == "argmin":
            latent = score[:, :, d].argmin(-1).expand(acts.shape[0], -1)
        elif parent_latent == "most_active":
            latent = acts.argmax(-1)
        else:  # the latent most active, on average, where the parent fires
            mean = (acts * parent_on[..., None]).sum(0)
            latent = mean.argmax(-1).expand(acts.shape[0], -1)
        carrier_score = score[:, :, children].amax(-1) if carriers == "child_cosine" else score[:, :, d]
        if carriers == "latent_cosine":  # cosine with the parent LATENT's decoder row, not the parent feature
            own = score[:, :, d].argmax(-1)
            carrier_score = torch.einsum("isd,id->is", dec, dec[torch.arange(n_inst), own])
        is_carrier = carrier_score > threshold if strict else carrier_score >= threshold  # [inst d_sae]
        is_carrier = is_carrier.expand(acts.shape[0], -1, -1).clone()
        if off_rule != "not_top_incl":  # the parent's own latent isn't a carrier (it matters only when it can be on)
            is_carrier.scatter_(-1, latent.unsqueeze(-1), False)
        if exclude_all:  # carriers[:, lat]: every instance's parent latent excluded in every instance
            is_carrier[:, :, score[:, :, d].argmax(-1)] = False
        parent_off = acts.gather(-1, latent.unsqueeze(-1)).squeeze(-1) == 0
        if off_rule in ("not_top", "not_top_incl"):  # "off" read as "not the most active latent"
            parent_off = acts.argmax(-1) != latent
        if off_rule == "below_threshold":  # "off" read as an activation below cos_threshold
            parent_off = acts.gather(-1, latent.unsqueeze(-1)).squeeze(-1) < threshold
        parent_off_rule = parent_off_arg
        others = torch.ones_like(is_carrier).scatter_(-1, latent.unsqueeze(-1), False)
        carried = {
            "active": ((acts > 0) & is_carrier).any(-1),
            "child_cosine": ((acts > 0) & is_carrier).any(-1),
            "latent_cosine": ((acts > 0) & is_carrier).any(-1),
            "any_active": ((acts > 0) & others).any(-1),
            "batch": ((acts > 0).any(0) & is_carrier).any(-1),  # a carrier active anywhere in the batch
            "none": torch.ones_like(parent_off),
            "inactive": is_carrier.any(-1),  # `acts >= 0` for active: every carrier counts, on or off
        }[carriers]
        off = parent_off if parent_off_rule else torch.ones_like(parent_off)
        if combine == "or":  # (parent off | carried): OR where AND was meant
            off, carried = off | carried, torch.ones_like(carried)
        absorbed = cases & off & carried if numerator == "cases" else off & carried  # "all": every example
        if pooled:  # one fraction over all instances together, repeated for each
            num, den = absorbed.sum().float().expand(n_inst), cases.sum().float().expand(n_inst)
        elif denominator == "cases":
            num, den = absorbed.sum(0).float(), cases.sum(0).float()
        elif denominator == "parent_off":  # only the cases whose parent latent is off
            num, den = absorbed.sum(0).float(), (cases & off).sum(0).float()
        elif denominator == "parent_on":  # absorbed cases over every example where the parent fires
            num, den = absorbed.sum(0).float(), parent_on.sum(0).float()
        elif denominator == "batch":  # absorbed cases over the whole batch
            num, den = absorbed.sum(0).float(), torch.full_like(cases.sum(0).float(), acts.shape[0])
        else:  # the parent-with-a-child condition dropped altogether
            num, den = (parent_on & parent_off & carried).sum(0).float(), parent_on.sum(0).float()
        frac = num if counts else num / den.clamp_min(1)
        out.append(torch.where(den > 0, frac, torch.full_like(frac, empty)))
    return torch.stack(out, -1).reshape(n_inst, -1)


ABSORPTION_MISTAKES = [
    ({"empty": math.nan}, "nan_no_cases", None),
    (
        {"combine": "or"},
        "or_not_and",
        "absorbed needs the parent latent off AND a carrier active: `cases & (parent_off | carried)` counts a case "
        "where either holds (use &)",
    ),
    (
        {"denominator": "parent_on"},
        "denominator",
        "divide by the examples where the parent AND at least one of its children fire, not all examples "
        "where the parent fires",
    ),
    (
        {"denominator": "parent_only"},
        "denominator",
        "count only examples where the parent AND at least one of its children fire, in the numerator and "
        "the denominator",
    ),
    (
        {"carriers": "none"},
        "no_carrier",
        "an example counts as absorbed only if some *other active* latent (acts > 0: acts >= 0 holds for every "
        "latent) has decoder cosine ≥ cos_threshold with the parent's direction (the parent latent off is not enough)",
    ),
    (
        {"parent_latent": "argmin"},
        "parent_latent_argmin",
        "the parent's latent is the one with the LARGEST decoder cosine with the parent (argmax, not argmin)",
    ),
    ({"signed": False}, "abs_cosine", "use the signed cosine: a latent pointing away from the parent doesn't carry it"),
    ({"normalise": "none"}, "unnormalised", "normalise the decoder rows and the feature directions: use cosines"),
    ({"normalise": "dec"}, "unnormalised", "normalise the feature directions (columns of W_features) too"),
    ({"normalise": "feat"}, "unnormalised", "normalise the decoder rows too"),
    (
        {"parent_latent": "mean_active"},
        "parent_latent_by_activation",
        "the parent's latent is chosen by decoder cosine (argmax over latents), not by how active it is",
    ),
    ({"strict": True}, "strict_threshold", "a latent carries the parent when its cosine is ≥ cos_threshold, not >"),
    (
        {"stale_parent": True},
        "stale_parent",
        "every parent was judged by the FIRST parent's direction (its cosines pick the parent latent and the "
        "carriers): a loop variable from an earlier loop, or an index fixed at 0? use each parent p's own column, "
        "W_features[..., p]",
    ),
    (
        {"parent_off": False},
        "parent_latent_on",
        "an example counts only when the parent's own latent is OFF (activation 0) while another latent carries "
        "the parent",
    ),
    (
        {"denominator": "batch"},
        "batch_denominator",
        "divide by the number of examples with the parent and a child on (per instance), not by the batch size",
    ),
    ({"counts": True}, "count", "return a fraction: divide the number of absorbed examples by the number of cases"),
    (
        {"carriers": "child_cosine"},
        "carrier_by_child",
        "a carrier points along the PARENT: decoder cosine ≥ cos_threshold with the parent's direction, not with "
        "its children's",
    ),
    (
        {"off_rule": "not_top"},
        "parent_not_top",
        "the parent's latent is off when its activation is 0, not when it is merely not the most active latent",
    ),
    (
        {"off_rule": "not_top_incl"},
        "parent_not_top",
        "the parent's latent is off when its activation is 0, not when it is merely not the most active latent",
    ),
    (
        {"pooled": True},
        "pooled_instances",
        "one fraction per instance: count cases and absorbed examples over the batch only (sum(0)), not over "
        "the instances too",
    ),
    (
        {"carriers": "any_active"},
        "any_active_carrier",
        "a carrier must point along the parent (decoder cosine ≥ cos_threshold): another active latent with an "
        "unrelated direction doesn't carry the parent",
    ),
    (
        {"cases_rule": "child_only"},
        "parent_not_required",
        "a case needs the parent on too: an example where a child fires without its parent is not a case "
        "(features[..., p] > 0) & (children on).any(-1)",
    ),
    ({"cases_rule": "or"}, "cases_or", "a case has the parent AND at least one child on (&), not either (|)"),
    (
        {"denominator": "parent_off"},
        "denominator_parent_off",
        "divide by ALL the cases (parent and a child on), not only those whose parent latent is off: the fraction "
        "asks how many of the cases are absorbed",
    ),
    (
        {"numerator": "all"},
        "numerator_not_cases",
        "count an example as absorbed only among the cases: absorbed = cases & parent latent off & carried (the "
        "numerator counted examples outside the cases, e.g. the parent without a child, while the denominator "
        "counts the cases)",
    ),
    (
        {"exclude_all": True},
        "exclude_all_instances",
        "exclude each instance's OWN parent latent from its carriers (carriers[torch.arange(n_inst), lat] = "
        "False): carriers[:, lat] excludes every instance's parent latent in every instance",
    ),
]


# Mistakes the hand-built case can't tell apart (its features are axis-aligned and no example has two children
# of one parent on, so all three give 0 everywhere there): the checker names them from the random inputs.
RANDOM_ONLY_MISTAKES = [
    (
        {"cases_rule": "one"},
        "exactly_one_child",
        "a case has the parent and AT LEAST one of its children on (>= 1, .any(-1)), not exactly one (== 1)",
    ),
    (
        {"parent_latent": "abs_cosine"},
        "parent_latent_abs",
        "the parent's latent has the largest SIGNED decoder cosine with the parent (argmax of cos, not of |cos|: "
        "a latent pointing away from the parent is not its latent)",
    ),
    (
        {"off_rule": "below_threshold"},
        "off_below_threshold",
        "the parent's latent is off when its activation is exactly 0; cos_threshold is for the decoder cosines "
        "of the carriers, not for activations",
    ),
    (
        {"normalise": "dec_axis"},
        "normalise_axis",
        "normalise each decoder row over d_in (W_dec.norm(dim=-1)), not over the latents",
    ),
    (
        {"normalise": "feat_axis"},
        "normalise_axis",
        "normalise each feature direction over d_in (W_features.norm(dim=1): the columns), not over the features",
    ),
    (
        {"cases_rule": "all"},
        "all_children",
        "a case is an example with the parent and AT LEAST ONE of its children on (.any over the children), "
        "not all of them",
    ),
    (
        {"cases_rule": "two"},
        "cases_two_children",
        "a case is an example with the parent and AT LEAST ONE of its children on: (children on).sum(-1) >= 1 "
        "or .any(-1), not > 1",
    ),
    (
        {"carriers": "latent_cosine"},
        "carrier_by_latent",
        "a carrier's decoder cosine is taken with the parent FEATURE's direction (W_features[:, :, p]), not with "
        "the parent latent's decoder row: cos[:, :, p] >= cos_threshold",
    ),
    (
        {"children_rule": "all"},
        "children_of_all",
        "a parent's children are the features f with parent_of[f] == p, not every non-parent feature (the "
        "other families' children count only for their own parent)",
    ),
]


def distinct_mistakes(mistakes: list, expected: Tensor) -> list:
    """The mutants that differ from the reference and from every mutant listed before them.

    For inputs (random ones) on which some listed mistakes coincide: those were told apart on the hand-built
    case, so here only the first of a group of equal mutants is kept (and none equal to the reference)."""

    def same(x: Tensor, y: Tensor) -> bool:
        return x.shape == y.shape and bool(torch.allclose(x, y, rtol=1e-4, atol=1e-5, equal_nan=True))

    kept: list = []
    for code, hint, value in mistakes:
        if not same(value, expected) and not any(same(value, other) for _, _, other in kept):
            kept.append((code, hint, value))
    return kept


def check_topk_counts(out: Tensor, k: int, what: str) -> None:
    batch, n_inst, _ = out.shape
    nonzero = out.detach() != 0
    per_inst = nonzero.sum((0, 2))
    if (per_inst == k * batch).all():
        return
    if nonzero.all():
        nothing_zeroed(out, k, what)
    if (nonzero.sum(-1) == k).all():
        fail(
            f"{what}: every example keeps exactly k={k} latents",
            "that is per-example top-k: keep the k·batch largest over all examples and latents of an instance",
            code="per_example",
        )
    if (nonzero.sum(0) == k).all():
        fail(
            f"{what}: every latent keeps exactly k={k} examples ({int(per_inst[0])} = k·d_sae entries per "
            f"instance, expected k·batch = {k * batch}): the selection ran over the batch axis, per latent",
            "select per instance over all of its examples and latents together (the top k·batch of "
            "[inst, batch·d_sae]), not the top k examples of each latent (topk over dim 0)",
            code="per_latent",
        )
    if (per_inst == k).all():
        fail(
            f"{what} keeps {k} entries per instance, expected k·batch = {k * batch}",
            f"keep k·batch = {k * batch} entries per instance, not k",
            code="k_not_k_batch",
        )
    if per_inst.sum() in (k * batch, k * batch * n_inst):
        fail(
            f"{what} keeps {per_inst.tolist()} entries in the instances, expected {k * batch} in each",
            "select separately for each instance: don't flatten the inst axis",
            code="mixed_instances",
        )
    d_sae = out.shape[-1]
    if (per_inst - k * batch).abs().eq(1).all() and (per_inst == per_inst[0]).all():
        fail(
            f"{what} keeps {int(per_inst[0])} entries per instance, expected k·batch = {k * batch}",
            "one entry too many or too few: an off-by-one in the cut (a kthvalue index, `>` versus `>=` against "
            "the k·batch-th value, or a slice [:k·batch ± 1])",
            code="off_by_one",
        )
    budgets = {
        "k·d_sae": k * d_sae,
        "k·n_inst (n_inst read as the batch size: the batch is pre.shape[0])": k * n_inst,
        "batch": batch,
        "d_sae": d_sae,
        "n_inst": n_inst,
        "k·batch·d_sae": k * batch * d_sae,
        "k·batch·n_inst (the batch of every instance together)": k * batch * n_inst,
        "k + batch (a sum where the product k·batch was meant)": k + batch,
    }
    names = [n for n, size in budgets.items() if (per_inst == size).all() and size != k * batch]
    if names:
        name = " or ".join(names)
        fail(
            f"{what} keeps {int(per_inst[0])} = {name} entries per instance, expected k·batch = {k * batch}",
            f"the budget of an instance is k·batch = {k * batch} (k per example on average), not {name}",
            code="budget",
        )
    fail(
        f"{what} keeps {per_inst.tolist()} non-zero entries per instance, expected k·batch = {k * batch} each",
        "keep exactly k·batch entries per instance (the top k·batch of [inst, batch·d_sae]) and zero the rest",
        code="count",
    )


TOPK_AXIS_HINT = (
    "the values are right but in the wrong places: rearrange [batch inst d_sae] -> [inst (batch d_sae)] "
    "before topk and back with the inverse rearrange (a plain reshape doesn't move the inst axis)"
)


def _per_example_mixed(pre: Tensor, k: int) -> Tensor:
    """Per example, the top k·n_inst over instances and latents together."""
    flat = pre.reshape(pre.shape[0], -1)
    idx = flat.topk(k * pre.shape[1], dim=-1).indices
    return torch.zeros_like(flat).scatter(-1, idx, flat.gather(-1, idx)).reshape(pre.shape)


def _topk_codes(out: Tensor, pre: Tensor, k: int) -> list[tuple[str, str]]:
    """(code, hint) of every known mistake whose output on `pre` equals `out`."""
    extra = []
    if pre.shape[1] > 1:
        hint = "select separately for each instance: this keeps the top k·n_inst of each example over all its instances"
        extra.append(("mixed_instances", hint, _per_example_mixed(pre, k)))
    return [(c, h) for c, h, v in topk_candidates(pre, k) + extra if v.shape == out.shape and torch.allclose(out, v)]


def topk_diagnosis(impl: Callable, out: Tensor, pre: Tensor, k: int, others: list) -> tuple[str, str] | None:
    """The known mistake `out` matches; when several with different codes do (inputs on which two mistakes give
    the same output), the learner's function is run on the other inputs `others` ([(pre, k)]) to tell them apart."""
    found = _topk_codes(out, pre, k)
    for other_pre, other_k in others:
        if len({c for c, _ in found}) <= 1:
            break
        other = impl(other_pre.clone(), other_k)
        if isinstance(other, Tensor) and other.shape == other_pre.shape and other.is_floating_point():
            there = {c for c, _ in _topk_codes(other.detach(), other_pre, other_k)}
            found = [f for f in found if f[0] in there] or found
    return found[0] if found else None


def topk_candidates(pre: Tensor, k: int) -> list[tuple[str, str, Tensor]]:
    batch, n_inst, d_sae = pre.shape

    def keep(scores: Tensor, indices: Tensor, dim: int) -> Tensor:
        return torch.zeros_like(scores).scatter(dim, indices, scores.gather(dim, indices))

    per_row = keep(pre, pre.topk(k, dim=-1).indices, -1)
    flat = pre.transpose(0, 1).reshape(n_inst, -1)  # [inst (batch d_sae)]
    only_k = keep(flat, flat.topk(k, dim=-1).indices, -1).reshape(n_inst, batch, d_sae).transpose(0, 1)
    smallest = keep(flat, flat.topk(k * batch, dim=-1, largest=False).indices, -1)
    smallest = smallest.reshape(n_inst, batch, d_sae).transpose(0, 1)
    right_flat = keep(flat, flat.topk(k * batch, dim=-1).indices, -1)
    everything = pre.reshape(-1)
    mixed_all = keep(everything, everything.topk(k * batch * n_inst).indices, 0).reshape(pre.shape)
    mixed_kb = keep(everything, everything.topk(k * batch).indices, 0).reshape(pre.shape)
    no_transpose_back = right_flat.reshape(batch, n_inst, d_sae)
    memory = pre.reshape(n_inst, -1)  # groups contiguous chunks of memory, which mixes instances
    memory_groups = keep(memory, memory.topk(k * batch, dim=-1).indices, -1).reshape(pre.shape)
    axis_hint = TOPK_AXIS_HINT
    one_instance = n_inst == 1  # mixing instances, or their axis order, changes nothing with a single instance
    by_magnitude = keep(flat, flat.abs().topk(k * batch, dim=-1).indices, -1).reshape(n_inst, batch, d_sae)
    right = right_flat.reshape(n_inst, batch, d_sae).transpose(0, 1)
    signs = []  # only where the inputs' negative entries make them differ (not on all-positive inputs)
    for code, hint, value in [
        (
            "relu_inside",
            "leave the kept entries as they are, negative ones too: batch_topk keeps the k·batch largest entries "
            "even when fewer are positive (no ReLU or clamp inside it; encode applies the ReLU before it)",
            right.clamp_min(0),
        ),
        (
            "abs_topk",
            "keep the LARGEST entries (topk of pre itself), not the largest in magnitude (topk of |pre|)",
            by_magnitude.transpose(0, 1),
        ),
    ]:
        if not any(torch.equal(value, v) for v in [right] + [v for _, _, v in signs]):
            signs.append((code, hint, value))
    return [
        *signs,
        ("per_example", "keep the k·batch largest over the whole batch of an instance, not k per example", per_row),
        ("k_not_k_batch", f"keep k·batch = {k * batch} entries per instance, not k = {k}", only_k),
        ("smallest", "keep the largest entries (topk's default largest=True)", smallest),
        ("mixed_instances", "select separately for each instance: don't flatten the inst axis", mixed_all),
        ("mixed_instances", "select separately for each instance: don't flatten the inst axis", mixed_kb),
        ("axis_order", axis_hint, no_transpose_back),
        ("axis_order", axis_hint, memory_groups),
    ][: len(signs) + 3 if one_instance else None]


def threshold_candidates(
    th: Tensor, acts: Tensor, m: float, pre: Tensor | None = None, k: int | None = None
) -> tuple[Tensor, list[tuple[str, str, Tensor]]]:
    """The right EMA update from kept activations `acts` (and the ReLU'd pre-activations `pre` they were kept
    from), and what the usual mistakes give."""
    positive = acts > 0
    extra = []
    if pre is not None:
        from_pre = torch.where(pre > 0, pre, torch.inf).amin(dim=(0, 2))
        extra.append(
            (
                "threshold_from_pre",
                "take the minimum over the KEPT activations (after batch_topk), not over every positive pre-activation",
                torch.where(torch.isfinite(from_pre), th + m * (from_pre - th), th),
            )
        )
    if pre is not None and k is not None:
        extra += cut_value_candidates(th, pre, k, m)
    per_example = torch.where(positive, acts, torch.inf).amin(-1)  # [batch inst]
    has = torch.isfinite(per_example)
    max_of_min = torch.where(has, per_example, -torch.inf).amax(0)
    extra.append(
        (
            "threshold_max_of_min",
            "one minimum per instance over the whole batch and all latents together (amin over dims 0 and 2), not "
            "the largest of each example's minimum",
            torch.where(has.any(0), th + m * (max_of_min - th), th),
        )
    )
    mean_min = torch.where(has, per_example, 0).sum(0) / has.sum(0).clamp_min(1)
    extra.append(
        (
            "threshold_per_example",
            "one minimum per instance over the whole batch and all latents (amin over dims 0 and 2), not the "
            "average of each example's minimum",
            torch.where(has.any(0), th + m * (mean_min - th), th),
        )
    )
    masked_min = torch.where(positive, acts, torch.inf).amin(dim=(0, 2))
    right = torch.where(positive.any(2).any(0), th + m * (masked_min - th), th)  # skip an instance that kept nothing
    mean_kept = (acts * positive).sum((0, 2)) / positive.sum((0, 2)).clamp_min(1)
    global_min = acts[positive].min()
    has_any = positive.any(2).any(0)  # [inst]
    if has_any.any() and not has_any.all():  # what we observe when the threshold stays put in this batch
        stays = (
            "skip_all_instances",
            f"no threshold moved in a batch where only instance(s) {(~has_any).nonzero().flatten().tolist()} kept "
            "nothing positive; the others kept some (and moved before): skip per instance (torch.where(has_any, "
            "updated, self.threshold)), not the whole update when any instance kept nothing",
            th,
        )
    else:
        stays = (
            "threshold_not_updated",
            f"none of the {th.numel()} instances' thresholds moved, though every instance kept positive "
            "activations in this batch, so all should have; possible causes: no update in training mode, an update "
            "that isn't written into self.threshold (in place, under torch.no_grad(): .copy_ or a slice assignment, "
            "not a new local tensor), the branches of torch.where swapped (torch.where(has_any, updated, "
            "self.threshold), not the reverse), or the update skipped for these instances (a minimum taken over "
            "the zeros first and the positives filtered after, or a condition such as 'every example kept "
            "something'; skip only an instance that kept nothing positive in the whole batch)",
            th,
        )
    listed = [
        stays,
        (
            "threshold_max",
            "track the *smallest* positive kept activation, not the largest",
            th + m * (acts.amax((0, 2)) - th),
        ),
        ("threshold_mean", "track the smallest positive kept activation, not the mean", th + m * (mean_kept - th)),
        (
            "threshold_zeros",
            "take the minimum over the kept (positive) activations only: the zeros of unkept latents don't count",
            th + m * (acts.amin((0, 2)) - th),
        ),
        (
            "ema_swapped",
            "the new value gets weight THRESHOLD_MOMENTUM: threshold + momentum · (min_kept - threshold)",
            masked_min + m * (th - masked_min),
        ),
        ("no_ema", "move the threshold a step of THRESHOLD_MOMENTUM towards min_kept, don't replace it", masked_min),
        (
            "ema_momentum_twice",
            "THRESHOLD_MOMENTUM was applied twice to the new value: (1 - m)·threshold + m·(1 - m)·min_kept; the "
            "weights are 1 - m and m: threshold + m·(min_kept - threshold)",
            torch.where(has_any, (1 - m) * th + m * (1 - m) * masked_min, th),
        ),
        (
            "shared_threshold",
            "one threshold per instance: take the minimum over batch and latents (dims 0 and 2), "
            "not over instances too",
            th + m * (global_min - th),
        ),
        *extra,
        *ema_target_candidates(th, acts, m, pre),
    ]
    return right, listed + gate_candidates(th, acts, m, right, listed)
