"""What an elementwise clash between two sizes in a learner's code says about part 8's inputs (every size in
them differs): which input holds the one axis where the other belongs, and which operand on the failing line
carries it. Shared by the diagnosis and the input checks (both import it; it imports neither)."""

from __future__ import annotations

import re
from typing import Any

from torch import Tensor

from tests.learner_errors import failing_line

Inputs = dict[str, Any]


def other_tensor_cause(err: BaseException, args: Inputs, dims: dict[str, str], clash: set[int], out_dims: str) -> str:
    """What an elementwise clash between two sizes says when they are two axes of the inputs (all sizes differ):
    the inputs that differ only in holding one of these axes instead of the other (V [inst C d_in] where U [inst
    d_out C] belongs), and, from the learner's frame, the operand on the failing line whose axes are the output's
    but for one of the clashing sizes (a computed tensor: the inputs themselves hold their own axes)."""
    axis = {n: d for k, t in args.items() for n, d in zip(t.shape, dims[k].split(), strict=True)}
    if len(clash) != 2 or not clash <= set(axis):
        return ""
    frame, line, _ = failing_line(err)
    want = out_dims.split()
    for var in dict.fromkeys(re.findall(r"(?<![\w.])([A-Za-z_]\w*)(?![\w(])", line)):
        t = frame.f_locals.get(var) if frame is not None else None
        if not isinstance(t, Tensor) or any(t is v for v in args.values()):  # an input, e.g. an argument on the line
            continue
        if t.ndim != len(want) or any(n not in axis for n in t.shape):
            continue
        got = [axis[n] for n in t.shape]
        off = [(g, w) for g, w in zip(got, want, strict=True) if g != w]
        if len(off) == 1 and {axis[n] for n in clash} == set(off[0]):
            wrong, right = off[0]
            break
    else:
        wrong, right, var = *sorted(axis[n] for n in clash), None
    sets = {k: set(dims[k].split()) for k in args}
    swaps = [
        (k, j)
        for k in args
        for j in args
        if wrong in sets[k] and right in sets[j] and sets[k] - {wrong} == sets[j] - {right}
    ]
    pairs = ", ".join(f"{k} [{dims[k]}] where {j} [{dims[j]}] belongs" for k, j in swaps)
    tensor = f"another tensor than the one meant ({pairs})" if pairs else "another tensor than the one meant"
    if var is None:
        return f"; or an operand computed from {tensor}, so it holds one axis's size where the other's belongs"
    return (
        f". `{var}` on the failing line has shape {tuple(t.shape)} [{' '.join(got)}] where the output's [{out_dims}] "
        f"belongs: the right number of axes, but {wrong} where {right} belongs. Was it computed from {tensor}, or "
        f"by an einsum or reduction that keeps {wrong} instead of {right}? Print the shapes of what it comes from"
    )
