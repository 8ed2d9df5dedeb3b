"""The sizes of a checker's inputs, and what a wrong size or factor in a learner's output says about the mistake.

A checker's own local variables (what it hands the learner: tensors, modules, configs, counts) name sizes by
themselves; `note_inputs(...)` adds what no variable holds (a named count such as `n_tokens=470`). A wrong axis
size, a size in an error message, or a factor in the values is then named by the input it comes from ("470 is
n_tokens"), which tells the learner which axis or count they used. The notes live for one checker run: `checker`
clears them before and after.
"""

from __future__ import annotations

import contextvars
import dataclasses
import math
import sys
from collections.abc import Callable, Iterable, Sequence
from types import FrameType
from typing import Any

import torch
from torch import Tensor

_CHECKER_CODES: set = set()  # the code objects of every @checker-decorated function
_NOTED: contextvars.ContextVar[tuple[tuple[str | None, Any], ...]] = contextvars.ContextVar("noted", default=())


def note_inputs(*objects: Any, **named: Any) -> None:
    """Record the inputs of the learner's call (keywords name them: `note_inputs(sae, h=h, n_tokens=470)`)."""
    _NOTED.set(_NOTED.get() + tuple((None, o) for o in objects) + tuple(named.items()))


def clear_notes() -> contextvars.Token:
    """Start a checker run with no notes (`_NOTED.reset(token)` ends it)."""
    return _NOTED.set(())


def reset_notes(token: contextvars.Token) -> None:
    _NOTED.reset(token)


def register_checker(fn: Callable) -> None:
    """Mark `fn`'s frames as a checker's: its local variables (what it hands the learner) name sizes too."""
    _CHECKER_CODES.add(fn.__code__)


def _checker_locals(frames: Iterable[FrameType] | None) -> list[tuple[str | None, Any]]:
    """The named locals of the innermost checker frame among `frames` (default: the live stack): tensors, modules,
    configs and counts (ints with a descriptive name: `k`, `batch_size`, not a loop's `i`)."""
    if frames is None:
        frame, frames = sys._getframe(1), []
        while frame is not None:
            frames.append(frame)
            frame = frame.f_back
        frames.reverse()
    checker = next((f for f in reversed(list(frames)) if f.f_code in _CHECKER_CODES), None)
    if checker is None:
        return []
    items = [(n, v) for n, v in checker.f_locals.items() if not n.startswith("_")]
    return [(n, v) for n, v in items if type(v) is not int or len(n) > 1 or n == "k"]


def size_labels(frames: Iterable[FrameType] | None = None, skip: tuple[int, ...] = ()) -> dict[int, list[str]]:
    """size -> what in the noted inputs, or the checker's own variables, has that size (config fields and named
    counts first, then tensor axes). Tensors of shape `skip` (the learner's output under judgement) are left out."""
    labels: dict[int, list[str]] = {}
    items = [*_NOTED.get(), *_checker_locals(frames)]
    items = [(n, v) for n, v in items if not (isinstance(v, Tensor) and tuple(v.shape) == skip)]
    items.sort(key=lambda item: isinstance(item[1], Tensor))  # counts and configs before tensor axes
    for name, value in items:
        for label, size in _labelled_sizes(name, value):
            if size > 1 and label not in labels.setdefault(size, []):
                labels[size].append(label)
    return labels


def name_size(size: int, frames: Iterable[FrameType] | None = None, skip: tuple[int, ...] = ()) -> str:
    """'470 is n_tokens' (at most three names), or '' when no noted input has that size."""
    names = size_labels(frames, skip).get(size, [])
    return f"{size} is {' or '.join(names[:3])}" if names else ""


def _labelled_sizes(name: str | None, value: Any) -> list[tuple[str, int]]:
    if type(value) is int:
        return [(name, value)] if name else []
    if isinstance(value, Tensor):
        return [(f"{name}.shape[{i}]" if name else f"an input's axis {i}", s) for i, s in enumerate(value.shape)]
    if isinstance(value, torch.nn.Module) or dataclasses.is_dataclass(getattr(value, "cfg", None)):
        cfg = getattr(value, "cfg", None)
        return _config_sizes(cfg) if cfg is not None else []
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _config_sizes(value)
    return []


def _config_sizes(cfg: Any) -> list[tuple[str, int]]:
    if not dataclasses.is_dataclass(cfg):
        return []
    return [(f"cfg.{f.name}", v) for f in dataclasses.fields(cfg) if type(v := getattr(cfg, f.name, None)) is int]


def input_sizes(*objects: Any) -> list[int | tuple[str, int]]:
    """The axis sizes of the tensors in `objects` (a module's parameters included), and the integer fields of
    the configs among them or held by a module (named `cfg.<field>`): what `generic_diagnosis` names a factor by."""
    found: list[int | tuple[str, int]] = []
    stack: list[Any] = list(objects)
    while stack:
        item = stack.pop()
        if isinstance(item, Tensor):
            found.extend(item.shape)
        elif isinstance(item, (tuple, list)):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, torch.nn.Module):
            stack.extend(p for p in item.parameters())
            stack.append(getattr(item, "cfg", None))
        elif dataclasses.is_dataclass(item) and not isinstance(item, type):
            found.extend(_config_sizes(item))
    return found


_LOG_BASES = {  # factor -> why: a logarithm in another base is the right one times a constant
    1 / math.log(2): "1/ln 2: a logarithm in base 2 (bits) where the natural log (nats) was asked",
    math.log(2): "ln 2: a natural log where base 2 (bits) was asked",
    1 / math.log(10): "1/ln 10: a logarithm in base 10 where the natural log was asked",
    math.log(10): "ln 10: a natural log where base 10 was asked",
}


def factor_reason(factor: float, named: dict[str, int], sizes: Sequence[int | tuple[str, int]]) -> str:
    """Why the values could be `factor` × the right ones: a size of a named output axis, its root, or the
    sizes of the inputs (one of them, or a ratio of two: a division by the wrong count). `sizes` holds plain
    sizes or (name, size) pairs, e.g. ("cfg.d_hidden", 2), so the count can be named."""
    near = lambda x: abs(factor - x) < 1e-3 * max(1.0, x)
    noted = [(label, s) for s, labels in size_labels().items() for label in labels if not label.startswith("an ")]
    reason = _size_reason(factor, near, named, [*sizes, *noted])
    if near(100) or near(0.01):  # a percentage: list it first, with any size that is also 100
        percent = "a percentage (× 100) where a fraction was asked, or the reverse"
        return f"{percent}; or {reason[0].lower()}{reason[1:]}" if reason else f"{percent}?"
    base = next((why for value, why in _LOG_BASES.items() if near(value)), None)
    if base:  # a ratio of two sizes can come close to an irrational factor: list it after the log base
        return f"{factor:.4g} = {base} (torch.log is the natural log)" + (f"; or {reason}" if reason else "?")
    if near(0.5) or near(2):  # 2 is also a common size: list both causes rather than guess
        half = "one contribution counted twice, or half of it lost, or a ½ convention (½·x², ½·MSE) added or dropped"
        return f"{half}, or {reason[0].lower()}{reason[1:]}" if reason else f"{half}?"
    return reason or "a missing or extra constant factor?"


def _size_reason(
    factor: float, near: Callable[[float], bool], named: dict[str, int], sizes: Sequence[int | tuple[str, int]]
) -> str:
    axis = next((n for n, s in named.items() if near(s) or near(1 / s)), None)
    if axis:
        n = named[axis]
        if n > 1 and near(1 / n):  # divided once too often: a mean where a sum belongs, or a mean then ÷ n again
            return (
                f"{factor:.4g} = 1/{n}: divided by the size of `{axis}` ({n}) once too often — a mean over `{axis}` "
                f"where a sum was asked, or a mean followed by another division by {n}?"
            )
        if n > 1:
            return (
                f"{factor:.4g} = {n}: not divided by the size of `{axis}` ({n}) — a sum over `{axis}` where a mean "
                "was asked, or a division by that count left out?"
            )
        return f"a sum where a mean was asked (or the reverse) over `{axis}` (size {n})?"
    root = next((n for n, s in named.items() if near(s**0.5) or near(s**-0.5)), None)
    if root:
        return (
            f"√{named[root]}, the root of the size of `{root}`: a root-mean-square where a norm (the root of a sum) "
            "was asked, or the reverse?"
        )
    fields: dict[int, list[str]] = {}  # size -> the config fields with that value (all of them: no guessing)
    for item in [*named.values(), *sizes]:
        name, size = item if isinstance(item, tuple) else (None, item)
        if size > 1:
            fields.setdefault(size, [])
            if name and name not in fields[size]:
                fields[size].append(name)
    labels = {s: f"{s} ({' or '.join(names)})" if names else str(s) for s, names in fields.items()}
    counts = sorted(labels)
    one = next((s for s in counts if near(s) or near(1 / s)), None)
    if one and near(1 / one):
        return (
            f"{factor:.4g} = 1/{labels[one]}, a size of your inputs: divided by that count once too often (a mean "
            "where a sum was asked, or a mean followed by another division by it)?"
        )
    if one:
        return (
            f"{factor:.4g} = {labels[one]}, a size of your inputs: a division by that count left out (a sum where a "
            "mean was asked)?"
        )
    root = next((s for s in counts if s > 3 and (near(s**0.5) or near(s**-0.5))), None)
    if root:
        return (
            f"{factor:.4g} = {'1/' if factor < 1 else ''}√{labels[root]}: a scale by the root of a size (as in "
            "attention's 1/√d) added or left out, or a root-mean-square where a norm was asked (or the reverse)?"
        )
    ratio = next(((s, t) for s in counts for t in counts if s != t and near(s / t)), None)
    if ratio:
        return (
            f"{factor:.4g} = {ratio[0]}/{ratio[1]}, a ratio of two sizes of your inputs: divided by {labels[ratio[1]]} "
            f"where {labels[ratio[0]]} belongs (a mean over the wrong axis, or the wrong count or config field), or "
            "a constant (a rate, coefficient or momentum) used where another belongs?"
        )
    for s in counts:
        for off, what in ((-1, "minus one"), (1, "plus one")):
            if s + off > 0 and (near(s / (s + off)) or near((s + off) / s)):
                wrong, right = (s + off, s) if near(s / (s + off)) else (s, s + off)
                return (f"{factor:.4g} = {s}/{s + off}" if near(s / (s + off)) else f"{factor:.4g} = {s + off}/{s}") + (
                    f": divided by {wrong} where {right} belongs, a count off by one ({labels[s]} {what}"
                    f"{', as an unbiased count' if off == -1 else ''}, or the reverse)?"
                )
    return ""


def size_relation(got: int, right: int, skip: tuple[int, ...] = ()) -> str:
    """How a wrong axis size `got` follows from the right one `right` and the inputs' sizes: one more or fewer,
    or the right size divided or multiplied by an input's size. '' when none fits."""
    if got <= 1:  # a size of 1 is an axis indexed or kept with keepdim, not a count computed wrongly
        return ""
    if got == right + 1 or got == right - 1:
        return (
            f"{got} is one {'more' if got > right else 'fewer'} than {right}: a count off by one (a `+ 1` or `- 1`, "
            "an inclusive end, or a slice such as [1:] or [:-1])"
        )
    labels = size_labels(skip=skip)
    named = lambda t: f"{t} ({' or '.join(labels[t][:2])})"
    for t in sorted(labels):
        if t > 1 and right // t == got and right % t:
            return f"{got} = {right} // {named(t)}: the right size divided by {t} (a share per instance or group?)"
        if t > 1 and right // t == got:
            return f"{got} = {right} / {named(t)}: the right size divided by {t} (a share per instance or group?)"
        if t > 1 and right * t == got:
            return f"{got} = {right} × {named(t)}: the right size multiplied by {t} (axes merged or tiled?)"
    return ""  # an input's size off by one is too weak a sign to name (5 is 4 + 1, and many sizes are near)
