"""generate_dataset's output dtype (float64 named, round BB) and shape: the axes in another order, the inst axis
missing, or fewer examples than asked for with no empty example left (examples with no feature present dropped by
a boolean mask)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from tests.checking import fail


def dataset_shape_failure(x: Any, shape: tuple[int, int, int], p: float) -> None:
    """`shape` = (examples, inst, feats) asked for with feature probability p."""
    if isinstance(x, Tensor) and x.dtype == torch.float64:  # round BB: the shared dtype hint named other sources
        fail(
            "generate_dataset(...) has dtype torch.float64, expected torch.float32",
            "the data set was made in double precision: a dtype=torch.float64 passed to torch.rand, a .double() or "
            ".to(torch.float64), or numpy draws (float64 by default) converted with torch.from_numpy; draw with "
            "torch.rand's default float32 (or convert at the end with .float())",
            code="float64_dataset",
        )
    if not isinstance(x, Tensor) or tuple(x.shape) == shape:
        return
    n, n_inst, n_feats = shape
    got = tuple(x.shape)
    if sorted(got) == sorted(shape):
        fail(
            f"generate_dataset(...) has shape {got}, expected (examples={n}, inst={n_inst}, feats={n_feats})",
            "the axes are in another order: the data set is [n_examples, n_inst, n_features]",
            code="axis_order",
        )
    if got == (n, n_feats):
        fail(
            f"generate_dataset(...) has shape {got}, expected {shape}",
            "the inst axis is missing: every instance gets its own data set, shape [n_examples, n_inst, n_features]",
            code="missing_inst",
        )
    if len(got) != 3 or got[1:] != shape[1:] or not 0 < got[0] < n or x.device.type == "meta" or x.is_sparse:
        return
    empty = x.detach().abs().sum(-1) == 0  # [examples inst]: no feature present
    rate = (1 - p) ** n_feats  # an (example, instance) pair is empty with this probability
    # Evidence that the missing examples are the empty ones: none left, AND the count kept is the binomial count of
    # non-empty examples (mean n q, sd sqrt(n q (1 - q)); 7 sd + 1 misses a correct drop with probability < 1e-11).
    none_any, none_all = not bool(empty.any()), not bool(empty.all(-1).any())
    kept_any, kept_all = (1 - rate) ** n_inst, 1 - rate**n_inst  # P(kept) for the mask .all(-1) / .any(-1)
    close = lambda q: abs(got[0] - n * q) <= 7 * (n * q * (1 - q)) ** 0.5 + 1
    if (none_any and close(kept_any)) or (none_all and not none_any and close(kept_all)):
        where = "in any instance" if none_any else "in every instance"
        fail(
            f"generate_dataset(...) has {got[0]} examples, expected {n}, and none of them is empty {where}: with "
            f"p = {p}, (1 - p)^{n_feats} = {rate:.1%} of the (example, instance) pairs have no feature present",
            f"examples with no active feature were dropped (a boolean mask over the examples, e.g. x[(x.sum(-1) > 0)"
            f"{'.all(-1)' if none_any else '.any(-1)'}]): keep all {n} examples. An all-zero example "
            "is kept as it is: the normalisation's guard (norm.clamp_min(1e-12)) leaves it all zeros instead of 0 / 0",
            code="dropped_empty",
        )
    relation, over = "", ""
    for size, name, axis in ((n_inst, "n_inst", "instances"), (n_feats, "n_features", "features")):
        if got[0] == n // size:
            relation, over = f": {got[0]} = {n} / {name} ({size})", axis
    fail(
        f"generate_dataset(...) has {got[0]} examples, expected {n}{relation}",
        "n_examples is the number of examples of every instance: the data set has shape [n_examples, n_inst, "
        "n_features]" + (f" (e.g. n_examples read as the total over the {over}?)" if over else ""),
        code="example_count",
    )
