"""Which two operands on the learner's failing line could not broadcast, read from its frame: "`f` [4, 16] * `W[3]`
[64]", with the one unsqueeze or transpose that would make them fit, when exactly one does.

Only names, attribute chains read from instance dictionaries (`static_value`), basic indexing and a few pure tensor
methods are evaluated: no learner function, property or call runs again."""

from __future__ import annotations

import ast
import contextlib
from collections.abc import Iterator
from types import FrameType
from typing import Any

import torch
from torch import Tensor

from tests.learner_values import _MISSING, static_value

_OPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}
_PURE_METHODS = {"unsqueeze", "squeeze", "sum", "mean", "amax", "amin", "float", "double", "detach", "t", "flatten"}
_TRANSPOSES = {"T", "mT"}


def clashing_operands(frame: FrameType | None, line: str) -> str:
    """'; the sizes clash in `f * W_dec[latent]`: f is [4, 16], W_dec[latent] is [64]; `f[..., None] * ...` would
    broadcast (a missing unsqueeze?)', or '' when the line can't be read that way."""
    tree = _parsed(line) if frame is not None else None
    if tree is None:
        return ""
    for node in _innermost_first(tree):
        if not (isinstance(node, ast.BinOp) and type(node.op) in _OPS):
            continue
        a, b = _value(node.left, frame), _value(node.right, frame)
        if not (isinstance(a, Tensor) and isinstance(b, Tensor)) or _broadcasts(a.shape, b.shape):
            continue
        left, right, op = ast.unparse(node.left), ast.unparse(node.right), _OPS[type(node.op)]
        found = f"; the sizes clash in `{left} {op} {right}`: {left} is {list(a.shape)}, {right} is {list(b.shape)}"
        return found + _one_fix(a.shape, b.shape, left, right, op)
    return ""


def _innermost_first(tree: ast.AST) -> Iterator[ast.AST]:
    for child in ast.iter_child_nodes(tree):
        yield from _innermost_first(child)
    yield tree


def _broadcasts(x: torch.Size, y: torch.Size) -> bool:
    try:
        torch.broadcast_shapes(x, y)
        return True
    except RuntimeError:
        return False


def _parsed(line: str) -> ast.AST | None:
    """The failing line as an expression: whole, or the right side of an assignment or return."""
    text = line.strip()
    for candidate in (text, text.removeprefix("return ").strip(), text.split("=", 1)[-1].strip()):
        with contextlib.suppress(SyntaxError):
            return ast.parse(candidate, mode="eval")
    return None


def _one_fix(a: torch.Size, b: torch.Size, left: str, right: str, op: str) -> str:
    """The fix, when exactly one of two readings fits: an operand whose last two axes are the other's swapped (a
    transpose), or a vector meant to spread along a new last axis of the other operand (an outer product; not for a
    column `M[:, i]`, where a row may have been meant instead)."""
    fixes = []
    swapped = [name for name, x, y in ((left, a, b), (right, b, a)) if len(x) >= 2 and (*x[:-2], x[-1], x[-2]) == y]
    if swapped:
        fixes.append((" or ".join(f"`({name}).mT`" for name in swapped), "one operand transposed?"))
    for vector, size, other, fixed in (
        (right, b, a, f"{left}[..., None] {op} {right}"),
        (left, a, b, f"{left} {op} {right}[..., None]"),
    ):
        if len(size) == 1 and len(other) >= 2 and "[:," not in vector.replace(" ", "") and size[0] not in other:
            fixes.append((f"`{fixed}`", "a missing unsqueeze ([..., None])?"))
    if len(fixes) != 1:
        return ""
    fixed, why = fixes[0]
    return f"; {fixed} would broadcast: {why}"


def _value(node: ast.AST, frame: FrameType) -> Any:
    """The value of `node` when it is a name, an attribute chain, basic indexing, .T/.mT or a pure tensor method of
    those; _MISSING otherwise."""
    try:
        return _evaluate(node, frame)
    except Exception:
        return _MISSING


def _evaluate(node: ast.AST, frame: FrameType) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.Name, ast.Attribute)) and (chain := _chain(node)):
        value = static_value(frame, chain)
        if value is not _MISSING:
            return value
    if isinstance(node, ast.Attribute) and node.attr in _TRANSPOSES:
        base = _evaluate(node.value, frame)
        return getattr(base, node.attr) if isinstance(base, Tensor) else _MISSING
    if isinstance(node, ast.Subscript):
        base, index = _evaluate(node.value, frame), _index(node.slice, frame)
        return base[index] if isinstance(base, Tensor) and index is not _MISSING else _MISSING
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in _PURE_METHODS:
        base = _evaluate(node.func.value, frame)
        args = [_evaluate(arg, frame) for arg in node.args]
        kwargs = {k.arg: _evaluate(k.value, frame) for k in node.keywords if k.arg}
        if isinstance(base, Tensor) and all(isinstance(x, (int, bool)) for x in [*args, *kwargs.values()]):
            return getattr(base, node.func.attr)(*args, **kwargs)
    return _MISSING


def _chain(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute) and (base := _chain(node.value)):
        return f"{base}.{node.attr}"
    return None


def _index(node: ast.AST, frame: FrameType) -> Any:
    if isinstance(node, ast.Tuple):
        parts = [_index(elt, frame) for elt in node.elts]
        return _MISSING if any(p is _MISSING for p in parts) else tuple(parts)
    if isinstance(node, ast.Slice):
        bounds = [None if b is None else _evaluate(b, frame) for b in (node.lower, node.upper, node.step)]
        return slice(*bounds) if all(b is None or isinstance(b, int) for b in bounds) else _MISSING
    value = _evaluate(node, frame)
    if value is Ellipsis or value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    if isinstance(value, Tensor) and value.dtype in (torch.long, torch.int, torch.bool):
        return value
    return _MISSING
