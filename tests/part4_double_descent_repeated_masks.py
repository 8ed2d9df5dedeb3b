"""generate_dataset: presence masks repeated across examples. Independent draws almost never give two examples of one
instance the same set of six or more present features (24 features, p = 0.1: about 0.06 such pairs per instance; the
expectation is computed from the observed counts of present features, so a wrong rate does not look like reuse), so
many such pairs mean the mask was drawn for fewer examples and reused (repeat / tile / cat of one draw, or a seed reset
inside a loop over chunks of examples). The gap between the repeated examples is reported when it is constant."""

from __future__ import annotations

import math
from collections import Counter

import torch
from torch import Tensor

from tests.checking import fail

MIN_PRESENT = 6  # a set of 6+ present features out of 24 repeats by chance about 0.06 times per 6000 examples


def _expected_repeats(counts: Tensor, n_features: int) -> float:
    """Expected number of pairs sharing one set of present features among examples with `counts` present features
    (counts >= MIN_PRESENT), when, given its count, an example's set is any of the C(F, k) sets alike (independent
    features of one rate). Conditioning on the counts keeps this fair to mistakes of the rate (all or no features)."""
    return sum(math.comb(int(c), 2) / math.comb(n_features, k) for k, c in enumerate(torch.bincount(counts)) if c > 1)


def repeated_mask_failure(x: Tensor, present: Tensor, what: str) -> None:
    """Fail (code repeated_masks) when far more examples than chance share their whole set of present features."""
    n_inst, n_features = present.shape[1:]
    if n_features > 62:
        return  # the set of present features is packed into one int64 below
    codes = (present.long() * (2 ** torch.arange(n_features, dtype=torch.int64, device=present.device))).sum(-1)
    many = present.sum(-1) >= MIN_PRESENT
    repeats, gaps, same_values, expected = 0, Counter(), 0, 0.0
    for k in range(n_inst):
        expected += _expected_repeats(present[:, k][many[:, k]].sum(-1), n_features)
        idx = many[:, k].nonzero().flatten()
        order = torch.argsort(codes[idx, k], stable=True)
        ids, sorted_codes = idx[order], codes[idx, k][order]
        equal = sorted_codes[1:] == sorted_codes[:-1]
        first, second = ids[:-1][equal], ids[1:][equal]
        repeats += int(equal.sum())
        gaps.update((second - first).abs().tolist())
        same_values += int(torch.isclose(x[first, k], x[second, k]).all(-1).sum())
    if repeats <= expected + 10 * math.sqrt(expected) + 6:
        return
    gap, count = gaps.most_common(1)[0]
    where = (
        f"; {count} of them are exactly {gap} examples apart (example e and e + {gap})"
        if count >= 0.8 * repeats
        else ""
    )
    values = (
        " Their values repeat too: whole examples are reused."
        if same_values >= 0.8 * repeats
        else " Their values differ: only the presence mask is reused."
    )
    fail(
        f"{what}: {repeats} pairs of examples of the same instance have exactly the same set of {MIN_PRESENT} or more "
        f"present features, independent draws give about {expected:.2g}{where}.{values}",
        "the examples are not independent: one draw was made for fewer examples and reused (repeat, tile, expand or "
        "torch.cat of one draw, or the random seed reset inside a loop over chunks of examples). Draw the presence "
        "mask and the values once with the full shape [n_examples, n_inst, n_features]",
        code="repeated_masks",
    )
