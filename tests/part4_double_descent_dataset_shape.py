"""generate_dataset's output shape: the axes in another order, the inst axis missing, or fewer examples than asked
for with no empty example left (examples with no feature present dropped by a boolean mask)."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from tests.checking import fail


def dataset_shape_failure(x: Any, shape: tuple[int, int, int], p: float) -> None:
    """`shape` = (examples, inst, feats) asked for with feature probability p."""
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
    if bool(empty.all(-1).any()):
        return
    where = "in any instance" if not bool(empty.any()) else "in every instance"
    fail(
        f"generate_dataset(...) has {got[0]} examples, expected {n}, and none of them is empty {where}: with "
        f"p = {p}, (1 - p)^{n_feats} = {rate:.1%} of the (example, instance) pairs have no feature present",
        f"examples with no active feature were dropped (a boolean mask over the examples, e.g. x[(x.sum(-1) > 0)"
        f"{'.all(-1)' if where == 'in any instance' else '.any(-1)'}]): keep all {n} examples. An all-zero example "
        "is kept as it is: the normalisation's guard (norm.clamp_min(1e-12)) leaves it all zeros instead of 0 / 0",
        code="dropped_empty",
    )
