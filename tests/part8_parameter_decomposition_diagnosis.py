"""Generic diagnoses for section 8's checkers (`tests.part8_parameter_decomposition`): what a wrong output says
about its cause when no mutant of the catalogue (`tests.part8_parameter_decomposition_mistakes`) matches it.

Each one states what was observed (a factor, a divisor, an axis the values don't vary along, the range of the
values, how far they moved) and names a cause only when the observation points to it.
"""

from __future__ import annotations

import itertools
import re
import traceback
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from tests.checking import CheckFailed, _describe_error, _is_learner_frame

Mistakes = list[tuple[str, str, Tensor]]


def scalar_hint(
    actual: Tensor, expected: Tensor, means: dict[str, int], sums: dict[str, int]
) -> tuple[str, str] | None:
    """(code, hint) when a wrong scalar is the right one times a constant: sums over axes the loss averages
    (`means`: axis name -> size) and means over axes it sums (`sums`), in every combination, another whole
    factor, or the opposite sign. Scalars get no generic diagnosis from `expect_matches`, so the checkers of losses
    ask this one. Every combination whose factor fits is named (two fit only when the sizes collide)."""
    a, e = float(actual), float(expected)
    if e == 0 or a == 0 or not abs(a) < float("inf"):
        return None
    ratio = a / e
    if abs(ratio + 1) < 1e-4:
        return "sign", "your value has the opposite sign of the expected one"
    swaps = [(f"a sum over {name} where a mean was asked", n) for name, n in means.items()]
    swaps += [(f"a mean over {name} where a sum was asked", 1 / n) for name, n in sums.items()]
    fits = []
    for k in range(1, len(swaps) + 1):
        for combo in itertools.combinations(swaps, k):
            factor = 1.0
            for _, f in combo:
                factor *= f
            if abs(ratio / factor - 1) < 1e-4:
                fits.append(" and ".join(why for why, _ in combo))
    if fits:
        size = f"{ratio:.4g}" if ratio >= 1 else f"1/{1 / ratio:.4g}"
        return "scale", f"your value is {size} × the expected one: {'; or '.join(fits)}?"
    whole = abs(ratio - round(ratio)) < 1e-4 or abs(1 / ratio - round(1 / ratio)) < 1e-4
    if abs(ratio - 1) > 1e-3 and whole:  # only a whole factor (or its inverse) says something about the code
        return "scale", f"your value is {ratio:.4g} × the expected one: a missing or extra constant factor?"
    return None


def divisor_hint(actual: Tensor, total: Tensor, counts: dict[str, int], right: int) -> tuple[str, str] | None:
    """(code, hint) when a normalised loss is `total / n` with a whole n other than `right`: what was counted.

    `counts` names sizes a learner might count instead (a description -> the number). The observation (the
    divisor) is always stated; a cause only when the divisor is one of `counts`."""
    a, t = float(actual), float(total)
    if a <= 0 or t <= 0 or not a < float("inf"):
        return None
    n = t / a
    if abs(n - round(n)) > 1e-3 * max(n, 1) or round(n) in (right, 0):
        return None
    n = round(n)
    named = [what for what, c in counts.items() if c == n]
    why = f": {' or '.join(named)}" if named else ""
    return "wrong_count", (
        f"your value is the squared error divided by {n}{why}; N = {right} is the number of entries of one "
        "instance's weight matrices W_l (the parameters the decomposition approximates)"
    )


def axis_reductions(right: Tensor, dims: str) -> Mistakes:
    """What comes back when one axis of the output is averaged (or summed) over and broadcast back: a reduction
    over the wrong axis, or one taken before the loop that should keep that axis."""
    out = []
    for axis, name in enumerate(dims.split()):
        if right.shape[axis] > 1:
            for how, reduce in (("averaged", torch.mean), ("summed", torch.sum)):
                value = reduce(right, dim=axis, keepdim=True).expand_as(right)
                hint = (
                    f"your values are the expected ones {how} over `{name}` (the same for every {name}): keep the "
                    f"`{name}` axis, a reduction (mean/sum) over `{name}` is one too many"
                )
                out.append(("reduced_axis", hint, value))
    return out


def constant_axis_hint(actual: Tensor, expected: Tensor, dims: str) -> tuple[str, str] | None:
    """(code, hint) when the values don't change along an axis where the expected ones do."""
    if actual.shape != expected.shape or not actual.is_floating_point() or actual.numel() < 2:
        return None
    if float(actual.max() - actual.min()) <= 1e-6 * (float(actual.abs().max()) + 1e-12):
        return None  # constant everywhere (all zeros, say): nothing singles out one axis
    for axis, name in enumerate(dims.split()):
        if actual.shape[axis] < 2:
            continue
        spread = lambda t, axis=axis: float((t.amax(axis) - t.amin(axis)).abs().max())
        scale = float(expected.abs().max()) + 1e-12
        if spread(actual) < 1e-6 * scale and spread(expected) > 1e-3 * scale:
            return "constant_axis", (
                f"your values are the same for every `{name}` (the expected ones differ): a mean or sum over "
                f"`{name}` that should keep it, or one `{name}`'s value used for all?"
            )
    return None


def call_naming_shapes(fn: Callable, args: dict[str, Tensor], dims: dict[str, str]) -> Any:
    """fn(*args.values()); a size mismatch raised in the learner's code gets a hint listing the inputs' shapes by
    name and, when a lower-rank input's last size is one of the two sizes in the error, naming that input (it was
    probably multiplied by a higher-rank tensor without a trailing axis: broadcasting aligns the last axes)."""
    try:
        return fn(*args.values())
    except RuntimeError as err:
        sizes = re.search(r"size of tensor a \((\d+)\) must match the size of tensor b \((\d+)\)", str(err))
        frames = traceback.extract_tb(err.__traceback__)
        if sizes is None or not any(_is_learner_frame(f.filename) for f in frames):
            raise
        described = _describe_error(err)
        shapes = ", ".join(f"{k} {tuple(t.shape)} [{dims[k]}]" for k, t in args.items())
        clash = {int(sizes.group(1)), int(sizes.group(2))}
        top = max(t.ndim for t in args.values())
        suspects = [k for k, t in args.items() if t.ndim < top and t.shape[-1] in clash]
        hint = f"a size mismatch between two of your tensors; the inputs are {shapes}"
        if suspects:
            k = suspects[0]
            hint += (
                f". The clash is {' vs '.join(str(n) for n in sorted(clash))}: was `{k}` [{dims[k]}] multiplied with "
                f"a tensor that has one more axis at the end? Broadcasting lines up the last axes, so give it a "
                f"trailing axis: {k}[..., None] (or use einsum with named axes)"
            )
        raise CheckFailed(described.message, hint, code="broadcast") from None


def ascent_hint(out: Tensor, init: Tensor, n_steps: int, step: float) -> tuple[str, str] | None:
    """(code, hint) from what the returned sources look like: their range, and how far they moved from `init`."""
    lo, hi = float(out.min()), float(out.max())
    if lo < -1e-6 or hi > 1 + 1e-6:
        sides = []
        if lo < -1e-6:
            sides.append(f"below 0 (min {lo:.3g}: a lower bound of -1, or none?)")
        if hi > 1 + 1e-6:
            sides.append(f"above 1 (max {hi:.3g}: no upper bound?)")
        return "out_of_range", (
            f"your sources go {' and '.join(sides)}: they are masks' random numbers, projected back onto [0, 1] "
            "after every step: clamp(r, 0, 1)"
        )
    far = float((out - init).abs().max())
    if far > n_steps * step + 1e-5:
        return "too_far", (
            f"an entry moved by {far:.3g} from where it started, more than {n_steps} steps of {step} allow: each step "
            "moves every entry by step_size · sign(∂loss/∂r), ±step_size at most (then the clamp)"
        )
    return None
