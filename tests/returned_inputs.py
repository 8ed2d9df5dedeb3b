"""Name an output that is one of the call's own tensors handed back: an argument, or a parameter or buffer of a
model it was given (or of the model whose method it is). "Your output is exactly `self.feature_probability`" says
which tensor came back where the result belongs, a slip no formula-level mutant reproduces."""

from __future__ import annotations

import dataclasses
import inspect
import itertools
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor

from tests.mutants import Reference

MAX_CANDIDATES = 64  # a large model's every weight isn't worth comparing: the output would have to be one of them


def returned_input_hint(reference: Reference, actual: Tensor, expected: Tensor, rtol: float, atol: float) -> str | None:
    """'your output is exactly <tensor>, unchanged: ...' when `actual` (already known to be wrong) equals a tensor
    the call was given, else None. A constant output is never claimed: it equals too many things. Never raises."""
    try:
        found = [label for label, t in _call_tensors(reference) if _same(actual, t, rtol, atol)]
        if not found:
            return None
    except Exception:  # a diagnosis must never be the reason a check crashes
        return None
    which = found[0] if len(found) == 1 else " or ".join(found[:3])
    return (
        f"your output is exactly {which}, unchanged: that tensor was returned (or read) where the result belongs. "
        "Check which variable your function returns and which field it reads"
    )


def _same(a: Tensor, b: Tensor, rtol: float, atol: float) -> bool:
    if a.shape != b.shape or a.numel() < 2 or not (b.is_floating_point() or b.dtype == a.dtype):
        return False
    a64, b64 = a.detach().double().cpu(), b.detach().double().cpu()
    return bool((a64 != a64.flatten()[0]).any()) and bool(torch.allclose(a64, b64, rtol=rtol, atol=atol))


def _call_tensors(reference: Reference) -> Iterator[tuple[str, Tensor]]:
    """(label, tensor) for the tensors the reference call can see, at most MAX_CANDIDATES."""
    return itertools.islice(_labelled(reference), MAX_CANDIDATES)


def _labelled(reference: Reference) -> Iterator[tuple[str, Tensor]]:
    owner = getattr(reference.fn, "__self__", None)
    if isinstance(owner, torch.nn.Module):
        yield from _module_tensors("self", owner)
    try:
        bound = inspect.signature(reference.fn).bind_partial(*reference.args, **reference.kwargs).arguments
    except (TypeError, ValueError):
        bound = {f"argument {i}": a for i, a in enumerate(reference.args)} | dict(reference.kwargs)
    for name, value in bound.items():
        yield from _held(name, value)


def _held(name: str, value: Any) -> Iterator[tuple[str, Tensor]]:
    if isinstance(value, Tensor):
        yield f"the input `{name}`", value
    elif isinstance(value, torch.nn.Module):
        yield from _module_tensors(name, value)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            field_value = getattr(value, f.name, None)
            if isinstance(field_value, Tensor):
                yield f"`{name}.{f.name}`", field_value


def _module_tensors(name: str, module: torch.nn.Module) -> Iterator[tuple[str, Tensor]]:
    for n, t in module.named_parameters():
        yield f"`{name}.{n}`", t
    for n, t in module.named_buffers():
        yield f"`{name}.{n}`", t
