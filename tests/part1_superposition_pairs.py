"""Part 1's correlated and anticorrelated pairs: name a wrong pair from the rates of its two features.

A pair generator's output tells more than "one feature of a pair present without the other": each of the two
features' presence rates follows some function of the pair's probability p (p, 2p, 1 - p, always ...), and which one
says which feature's mask went wrong. These checks run before the layout diagnoses (pairs on the wrong features),
which only permute draws of rate p and so never explain a feature that is always present or present at 2p.
"""

from __future__ import annotations

from itertools import product

import torch
from torch import Tensor

from tests.checking import fail
from tests.part1_superposition_probes import consistent


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
