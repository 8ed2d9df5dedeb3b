"""What the values on the learner's failing line were, read from its frame without running any of its code: a
non-number operand named by its expression (`self.cfg.sparsity_coeff` is a list), and an index that is out of range
on the axis it sits on but fits another axis of the same tensor (indices swapped or on the wrong axis)."""

from __future__ import annotations

import re
from types import FrameType
from typing import Any

from torch import Tensor, nn

_MISSING = object()
_CHAIN = r"(?<![\w.])[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*(?![\w.])"
_KINDS = {"list": "a list", "tuple": "a tuple", "dict": "a dict", "str": "a string", "NoneType": "None"}


def static_value(frame: FrameType, expr: str) -> Any:
    """The value of a name or attribute chain (`self.cfg.eps`) in the learner's frame, read from instance
    dictionaries and a module's parameters/buffers/sub-modules only: no property, __getattr__ or call is run.
    _MISSING when it can't be read that way."""
    base, *attrs = expr.split(".")
    value = frame.f_locals.get(base, frame.f_globals.get(base, _MISSING))
    for attr in attrs:
        if value is _MISSING:
            return _MISSING
        stores = [getattr(value, "__dict__", {})] if not isinstance(value, type) else []
        if isinstance(value, nn.Module):
            stores = [value._parameters, value._buffers, value._modules, *stores]
        value = next((store[attr] for store in stores if isinstance(store, dict) and attr in store), _MISSING)
    return value


def wrong_operand(err: BaseException, frame: FrameType | None, line: str) -> str:
    """For `unsupported operand type(s) for +: 'Tensor' and 'list'`: the expressions on the failing line whose value
    is that list (dict, str, tuple, None), e.g. "`self.cfg.sparsity_coeff` is a list here ([0.2, 0.1]), not a
    number". '' when none is found."""
    match = re.search(r"unsupported operand type\(s\) for [^:]+: '(\w+)' and '(\w+)'", str(err))
    if not isinstance(err, TypeError) or match is None or frame is None:
        return ""
    kinds = {kind for kind in match.groups() if kind in _KINDS}
    found = []
    for expr in dict.fromkeys(re.findall(_CHAIN + r"(?!\s*[(\[])", line)):
        value = static_value(frame, expr)
        if value is not _MISSING and type(value).__name__ in kinds:
            found.append((expr, value))
    if not found:
        return ""
    expr, value = found[-1]  # the longest chain comes last on a line like `x + self.cfg.field`
    kind = type(value).__name__
    shown = "" if value is None else f" ({reprlib_short(value)})"
    what = (
        "a wrong config field (another field than the one meant?)"
        if re.search(r"\bcfg\b|config", expr)
        else "another variable than the one meant, or a value still to convert (torch.tensor(...))?"
    )
    return f"`{expr}` is {_KINDS[kind]} here{shown}, not a number or tensor: {what}"


def reprlib_short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def index_on_wrong_axis(err: BaseException, frame: FrameType | None, line: str) -> str:
    """For `index 367 is out of bounds for dimension 0 with size 4` on a line indexing `x[a, b]`: the index holding
    367 sits on an axis too short for it but fits another axis of x; said as observed (sizes named), with the swap
    as a question. '' otherwise."""
    match = re.search(r"index (-?\d+) is out of bounds", str(err))
    if not isinstance(err, IndexError) or match is None or frame is None:
        return ""
    bad = int(match.group(1))
    for expr, inside in re.findall(r"(" + _CHAIN + r")\[([^\[\]]+)\]", line):
        x = static_value(frame, expr)
        parts = [p.strip() for p in inside.split(",")]
        if not isinstance(x, Tensor) or not 1 < len(parts) <= x.ndim or any(p in ("...", "None") for p in parts):
            continue
        ranges = [_index_range(frame, p) for p in parts]
        for axis, r in enumerate(ranges):
            if r is None or not (r[0] <= bad <= r[1]) or _fits(r, x.shape[axis]):
                continue
            others = [a for a in range(x.ndim) if a != axis and _fits(r, x.shape[a])]
            if not others:
                continue
            other = others[0]
            part, shape = parts[axis], list(x.shape)
            said = (
                f"; `{part}` (values {r[0]} to {r[1]}) is the index on axis {axis} of {expr} {shape} "
                f"(size {x.shape[axis]}), which it overruns, but fits axis {other} (size {x.shape[other]})"
            )
            back = ranges[other] if other < len(ranges) else None
            if back is not None and _fits(back, x.shape[axis]):
                swapped = parts.copy()
                swapped[axis], swapped[other] = parts[other], parts[axis]
                return (
                    f"{said}, and `{parts[other]}` on axis {other} fits axis {axis}: the two indices look swapped "
                    f"({expr}[{', '.join(swapped)}]?)"
                )
            return f"{said}: an index on the wrong axis?"
    return ""


def _index_range(frame: FrameType, part: str) -> tuple[int, int] | None:
    """(min, max) of an integer index written as a literal, a name or an attribute chain; None for anything else."""
    if re.fullmatch(r"-?\d+", part):
        return int(part), int(part)
    if not re.fullmatch(_CHAIN, part):
        return None
    value = static_value(frame, part)
    if isinstance(value, int) and not isinstance(value, bool):
        return value, value
    integer = isinstance(value, Tensor) and not value.is_floating_point() and not value.is_complex()
    if integer and value.numel() > 0 and (value.dtype.is_signed or value.dtype.itemsize > 1):  # not a bool mask
        return int(value.min()), int(value.max())
    return None


def _fits(r: tuple[int, int], size: int) -> bool:
    return -size <= r[0] and r[1] < size
