"""attribution_edges: whether the learner's code read the VALUES of frozen.error at all.

Error columns that are all zero have several causes that give the same adjacency (the local replacement model is
linear, so no output tells them apart): grad.sum(-1) instead of the dot product, an error vector that is not a leaf
requiring grad, columns never filled, or a leaf built from the error's shape only (torch.zeros_like(frozen.error)),
which holds zeros. The last one is observed directly: the learner is re-run on a copy of the frozen run while a
TorchFunctionMode records every torch call that receives that copy's error tensor.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.overrides import TorchFunctionMode

from tests.checking import fail

_SHAPE_ONLY = {"zeros_like", "empty_like", "new_zeros", "new_empty", "size", "dim", "numel", "__len__"}
_META = ("shape", "dtype", "device", "requires_grad", "ndim", "layout", "is_cuda", "is_leaf")


class _Reads(TorchFunctionMode):
    """Records the torch functions that receive `target` (by identity) and read more than its metadata."""

    def __init__(self, target: Tensor) -> None:
        super().__init__()
        self.target, self.used, self.read = target, False, False

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if any(a is self.target for a in (*args, *kwargs.values())):
            self.used = True
            name = getattr(func, "__name__", "")
            meta = name == "__get__" and getattr(getattr(func, "__self__", None), "__name__", "") in _META
            self.read = self.read or not (name in _SHAPE_ONLY or meta)
        return func(*args, **kwargs)


def error_value_unread(impl: Callable, model: Any, tc: Any, frozen: Any, graph: Any, result: Any) -> None:
    """Named failure when the error columns of `result` are zero and the learner never read frozen.error's values."""
    n = graph.n_nodes
    if not isinstance(result, Tensor) or tuple(result.shape) != (n, n) or not frozen.error.abs().max() > 0:
        return
    cols = result.detach()[:, graph.nodes("error")].float()
    if not cols.isfinite().all() or cols.abs().max() > 1e-7 * (1 + float(result.detach().abs().max())):
        return
    copy = dataclasses.replace(frozen, error=frozen.error.clone())
    mode = _Reads(copy.error)
    try:
        with torch.no_grad(), mode:
            impl(model, tc, copy, graph)
    except Exception:  # the probe only names; a crash here is reported by the main call's checks
        return
    if mode.read:
        return
    how = "used only its shape" if mode.used else "never used it"
    fail(
        f"the error nodes' columns are all zero, and your code {how}: it never read frozen.error's values",
        "the error leaf holds zeros instead of the error vectors (e.g. torch.zeros_like(frozen.error)"
        ".requires_grad_() keeps the shape and forgets the values), so each error edge (grad · error).sum(-1) is 0: "
        "build the leaf from the values, frozen.error.detach().clone().requires_grad_(True)",
        code="error_leaf_value",
    )
