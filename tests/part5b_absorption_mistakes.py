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
from utils.part5b_absorption import HierarchyConfig

# Every statistic of a configuration gets failure probability FAILURE_PROBABILITY / GEN_TESTS (a union
# bound): a configuration runs fewer than 200 tests, two configurations fewer than 400.
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
) -> Tensor:
    """The reference computation with one rule changed: what a known mistake returns."""
    parent_off_arg = parent_off
    dec = W_dec / W_dec.norm(dim=-1, keepdim=True) if normalise in ("both", "dec") else W_dec
    feat = W_features / W_features.norm(dim=1, keepdim=True) if normalise in ("both", "feat") else W_features
    cos = torch.einsum("isd,idf->isf", dec, feat)
    score = cos if signed else cos.abs()
    n_inst = acts.shape[1]
    out = []
    for p in [f for f, q in enumerate(parent_of) if q == -1]:
        children = [f for f, q in enumerate(parent_of) if q == p]
        parent_on = features[..., p] > 0
        cases = parent_on & (features[..., children] > 0).any(-1)
        if parent_latent == "cosine":
            latent = score[:, :, p].argmax(-1).expand(acts.shape[0], -1)  # [batch inst]
        elif parent_latent == "most_active":
            latent = acts.argmax(-1)
        else:  # the latent most active, on average, where the parent fires
            mean = (acts * parent_on[..., None]).sum(0)
            latent = mean.argmax(-1).expand(acts.shape[0], -1)
        is_carrier = score[:, :, p] > threshold if strict else score[:, :, p] >= threshold  # [inst d_sae]
        is_carrier = is_carrier.expand(acts.shape[0], -1, -1).clone()
        is_carrier.scatter_(-1, latent.unsqueeze(-1), False)
        parent_off = acts.gather(-1, latent.unsqueeze(-1)).squeeze(-1) == 0
        parent_off_rule = parent_off_arg
        others = torch.ones_like(is_carrier).scatter_(-1, latent.unsqueeze(-1), False)
        carried = {
            "active": ((acts > 0) & is_carrier).any(-1),
            "any_active": ((acts > 0) & others).any(-1),
            "none": torch.ones_like(parent_off),
        }[carriers]
        off = parent_off if parent_off_rule else torch.ones_like(parent_off)
        absorbed = cases & off & carried
        if denominator == "cases":
            num, den = absorbed.sum(0).float(), cases.sum(0).float()
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
        "an example counts as absorbed only if some *other active* latent has decoder cosine ≥ cos_threshold "
        "with the parent's direction (the parent latent being off is not enough)",
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
        {"carriers": "any_active"},
        "any_active_carrier",
        "a carrier must point along the parent (decoder cosine ≥ cos_threshold): another active latent with an "
        "unrelated direction doesn't carry the parent",
    ),
]


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
    axis_hint = (
        "the values are right but in the wrong places: rearrange [batch inst d_sae] -> [inst (batch d_sae)] "
        "before topk and back with the inverse rearrange (a plain reshape doesn't move the inst axis)"
    )
    one_instance = n_inst == 1  # mixing instances, or their axis order, changes nothing with a single instance
    return [
        ("per_example", "keep the k·batch largest over the whole batch of an instance, not k per example", per_row),
        ("k_not_k_batch", f"keep k·batch = {k * batch} entries per instance, not k = {k}", only_k),
        ("smallest", "keep the largest entries (topk's default largest=True)", smallest),
        ("mixed_instances", "select separately for each instance: don't flatten the inst axis", mixed_all),
        ("mixed_instances", "select separately for each instance: don't flatten the inst axis", mixed_kb),
        ("axis_order", axis_hint, no_transpose_back),
        ("axis_order", axis_hint, memory_groups),
    ][: 3 if one_instance else None]


def threshold_candidates(th: Tensor, acts: Tensor, m: float) -> tuple[Tensor, list[tuple[str, str, Tensor]]]:
    """The right EMA update from kept activations `acts`, and what the usual mistakes give."""
    positive = acts > 0
    masked_min = torch.where(positive, acts, torch.inf).amin(dim=(0, 2))
    right = torch.where(positive.any(2).any(0), th + m * (masked_min - th), th)  # skip an instance that kept nothing
    mean_kept = (acts * positive).sum((0, 2)) / positive.sum((0, 2)).clamp_min(1)
    global_min = acts[positive].min()
    return right, [
        ("threshold_not_updated", "in training mode, update self.threshold (in place, under torch.no_grad())", th),
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
            "shared_threshold",
            "one threshold per instance: take the minimum over batch and latents (dims 0 and 2), "
            "not over instances too",
            th + m * (global_min - th),
        ),
    ]


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
        }[kind]
        return sum((per(e) for e in err), torch.zeros_like(h[..., 0]))

    d_sae = acts.shape[-1]
    if len(sizes) == 1:  # one prefix, the full width: the prefix-structure mistakes change nothing
        return [
            ("no_b_dec", "add b_dec to the reconstruction", loss(rec([(0, d_sae)], bias=False))),
            ("skipped_last", "loop over every size in prefix_sizes, including the last", torch.zeros_like(h[..., 0])),
            (
                "sum_d_in",
                "average the squared error over d_in (mean(-1)), don't sum it",
                loss(rec([(0, d_sae)]), "sum"),
            ),
            ("norm", "square the error: mean over d_in of (h_m - h)², not its norm", loss(rec([(0, d_sae)]), "norm")),
            ("mean_then_square", "square first, then average over d_in", loss(rec([(0, d_sae)]), "mean_sq")),
        ]
    prefixes = [(0, m) for m in sizes]
    groups = [(lo, hi) for lo, hi in zip((0, *sizes[:-1]), sizes, strict=True)]
    return [
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
        ("off_by_one", "prefix m is acts[..., :m] (m latents)", loss(rec([(0, min(m + 1, d_sae)) for m in sizes]))),
        ("off_by_one", "prefix m is acts[..., :m] (m latents)", loss(rec([(0, m - 1) for m in sizes]))),
    ]


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
