"""Generic diagnoses for section 8's checkers (`tests.part8_parameter_decomposition`): what a wrong output says
about its cause when no mutant of the catalogue (`tests.part8_parameter_decomposition_mistakes`) matches it.

Each one states what was observed (a factor, a divisor, an axis the values don't vary along, the range of the
values, how far they moved) and names a cause only when the observation points to it.
"""

from __future__ import annotations

import ast
import itertools
import linecache
import math
import re
import traceback
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from tests.checking import CheckFailed, _describe_error, _is_learner_frame, fail, uniform_moments_tolerance
from tests.part8_parameter_decomposition_clashes import other_tensor_cause
from tests.part8_parameter_decomposition_hints import varying
from tests.part8_parameter_decomposition_power_laws import power_observation
from tests.part8_parameter_decomposition_readings import reordered_hint  # noqa: F401  (diag.reordered_hint)
from tests.part8_parameter_decomposition_slope_names import slope_names

Mistakes = list[tuple[str, str, Tensor]]


def _failing_span(frames: list[traceback.FrameSummary]) -> str | None:
    """The learner's failing expression (Python's column span of it), or None when it can't be read."""
    frame = next((f for f in reversed(frames) if _is_learner_frame(f.filename)), None)
    if frame is None or frame.colno is None or frame.end_colno is None or frame.end_lineno != frame.lineno:
        return None
    return linecache.getline(frame.filename, frame.lineno or 0)[frame.colno : frame.end_colno].strip()


def _failing_op(frames: list[traceback.FrameSummary]) -> str | None:
    """ "matmul" when the learner's failing expression is a matrix product (`@`, matmul, bmm), "elementwise" when
    it is another operation, None when the span can't be read."""
    span = _failing_span(frames)
    if span is None:
        return None
    try:
        node = ast.parse(span, mode="eval").body
    except SyntaxError:
        return None
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.MatMult):
        return "matmul"
    func = node.func if isinstance(node, ast.Call) else None
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
    return "matmul" if name in ("matmul", "bmm", "mm") else "elementwise"


def scalar_hint(
    actual: Tensor, expected: Tensor, means: dict[str, int], sums: dict[str, int]
) -> tuple[str, str] | None:
    """(code, hint) when a wrong scalar is the right one times a constant: sums over axes the loss averages
    (`means`: axis name -> size) and means over axes it sums (`sums`), in every combination, another whole
    factor, a division by one count where another belongs, or the opposite sign. Every combination whose factor fits
    is named (two fit only when the sizes collide)."""
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
    if abs(ratio - 0.5) < 1e-4:
        return "scale", "your value is 1/2 × the expected one: a factor 1/2 too many (the ½ MSE convention, ½ Σ d²)?"
    counts = {**means, **sums}  # a division by one count where another belongs: the ratio of the two
    pairs = [(a, n, b, m) for a, n in counts.items() for b, m in counts.items() if n != m]
    if wrong := [
        f"divided by {m} ({b}) where {n} ({a}) belongs" for a, n, b, m in pairs if abs(ratio * m / n - 1) < 1e-4
    ]:
        return "scale", f"your value is {ratio:.4g} × the expected one: {'; or '.join(wrong)}?"
    whole = abs(ratio - round(ratio)) < 1e-4 or abs(1 / ratio - round(1 / ratio)) < 1e-4
    if abs(ratio - 1) > 1e-3 and whole:  # only a whole factor (or its inverse) says something about the code
        return "scale", f"your value is {ratio:.4g} × the expected one: a missing or extra constant factor?"
    return None


def common_factor(actual: Tensor, expected: Tensor) -> float | None:
    """The factor c (not 1) when actual = c · expected everywhere (a stack of losses scaled alike), else None."""
    e_sq = float((expected * expected).sum())
    if actual.shape != expected.shape or e_sq == 0:
        return None
    c = float((actual * expected).sum()) / e_sq
    ok = abs(c - 1) > 1e-3 and abs(c) > 1e-6 and torch.allclose(actual, c * expected, rtol=1e-4, atol=1e-6)
    return c if ok else None


def call_naming_apply(fn: Callable, *args: Any) -> Any:
    """fn(*args); PyTorch's refusal of an autograd Function called as an instance (no .apply) gets a hint."""
    try:
        return fn(*args)
    except RuntimeError as err:
        frames = traceback.extract_tb(err.__traceback__)
        line = next((f.line or "" for f in reversed(frames) if _is_learner_frame(f.filename)), "")
        matmul = _failing_op(frames) == "matmul" or (_failing_op(frames) is None and ("@" in line or "matmul" in line))
        if "must match the size" in str(err) and matmul:
            raise CheckFailed(
                _describe_error(err).message,
                f"the failing line multiplies matrices ({line.strip()}): a batched matmul treats every axis but the "
                "last two as batch axes and lines them up from the right, so [batch inst d_in] @ [inst d_in C] pairs "
                "batch with inst; use einsum with named axes (or move the axes so they line up)",
                code="batched_matmul",
            ) from None
        if "Legacy autograd function" not in str(err):
            raise
        raise CheckFailed(
            _describe_error(err).message,
            "call an autograd Function through its class's .apply: LowerLeakyHardSigmoid.apply(z, self.alpha), "
            "not LowerLeakyHardSigmoid()(z, self.alpha) (instantiating it calls the legacy interface)",
            code="no_apply",
        ) from None


def backward_grad(out: Tensor, x: Tensor, g: Tensor, name: str) -> Tensor | None:
    """∂(Σ out·g)/∂x, naming what autograd rejects in a learner's backward (their own errors propagate)."""
    try:
        return torch.autograd.grad((out * g).sum(), (x,), allow_unused=True)[0]
    except RuntimeError as err:
        if any(_is_learner_frame(f.filename) for f in traceback.extract_tb(err.__traceback__)):
            raise
        if "incorrect number of gradients" in str(err):
            fail(
                f"{name}.backward returned the wrong number of gradients",
                "return one per input of forward: (grad_x, None), None for alpha",
                code="n_grads",
            )
        hint = "return (grad_x, None) with grad_x a tensor shaped like x"
        if "must implement either the backward" in str(err):  # no method called `backward` at all
            hint = "your Function has no method named `backward` (misspelt, e.g. `backwards`?): a @staticmethod"
        fail(f"autograd rejected what {name}.backward returned: {str(err).splitlines()[0]}", hint, code="backward")


class SavingContext:
    """A stand-in for an autograd Function's ctx, to call its forward directly (the one-change diagnosis)."""

    def save_for_backward(self, *tensors: Tensor) -> None:
        self.saved_tensors = tensors


def with_parameters(module: torch.nn.Module, p: dict[str, Tensor]) -> torch.nn.Module:
    """`module` with its parameters set from `p` (the checker's values), for the solution's reference call."""
    with torch.no_grad():
        for name, param in module.named_parameters():
            param.copy_(p[name])
    return module


def divisor_hint(actual: Tensor, total: Tensor, counts: dict[str, int], right: int) -> tuple[str, str] | None:
    """(code, hint) when a normalised loss is `total / n` with n other than `right`: what was counted.

    `counts` names sizes a learner might count instead (a description -> the number). A divisor is claimed only
    when n is a whole number to float precision (a relative 1e-5: a float32 loss's rounding is ~1e-6, and a random
    ratio near 500 lands that close to a whole number about once in 100); a cause only when n is one of `counts`.
    Any other ratio is stated as a factor, with the usual causes listed rather than one asserted."""
    a, t = float(actual), float(total)
    if a <= 0 or t <= 0 or not a < float("inf"):
        return None
    n = t / a
    whole = abs(n - round(n)) <= min(1e-5 * n, 1e-2)  # absolute too: near 22034 a relative 1e-5 is ±0.2, a coin flip
    if round(n) in (right, 0) and whole:
        return None
    if not whole or n > 100 * right:  # no whole count (or none a learner could have counted): what was seen
        return "values", (
            f"your value is {right / n:.4g} × the expected one (not the squared error over another whole count than "
            f"N = {right}): a reduction taken before the square (W - U V averaged or summed over the "
            "instances or over entries before .pow(2)), a square missing or applied to something else, a divisor per "
            "matrix (its own d_out, d_in or entries: a mean over one axis), or other entries than those of every "
            "W_l - U_l V_l? Square every entry, sum over the matrices, divide by N, sum "
            "over the instances"
        )
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


def call_naming_shapes(fn: Callable, args: dict[str, Tensor], dims: dict[str, str], out_dims: str = "") -> Any:
    """fn(*args.values()); a size mismatch raised in the learner's code gets a hint listing the inputs' shapes by
    name and, when a lower-rank input's last size is one of the two sizes in the error, naming that input (it was
    probably multiplied by a higher-rank tensor without a trailing axis: broadcasting aligns the last axes); an
    elementwise clash also names an operand computed from another input than the one meant (output axes `out_dims`)."""
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
        # a lower-rank input is the suspect only when the clash is its last size against one it doesn't have
        suspects = [k for k, t in args.items() if t.ndim < top and t.shape[-1] in clash and not clash <= set(t.shape)]
        hint = f"a size mismatch between two of your tensors; the inputs are {shapes}"
        line = next((f.line or "" for f in reversed(frames) if _is_learner_frame(f.filename)), "")
        if suspects:
            k = suspects[0]
            hint += (
                f". The clash is {' vs '.join(str(n) for n in sorted(clash))}: was `{k}` [{dims[k]}] multiplied with "
                f"a tensor that has one more axis at the end? Broadcasting lines up the last axes, so give it a "
                f"trailing axis: {k}[..., None] (or use einsum with named axes)"
            )
        elif (op := _failing_op(frames)) == "elementwise":
            named = {
                n: [f"{dims[k].split()[i]}" for k, t in args.items() for i, m in enumerate(t.shape) if m == n]
                for n in sorted(clash)
            }
            what = " vs ".join(f"{n} ({'/'.join(dict.fromkeys(v)) or 'no input axis'})" for n, v in named.items())
            pairs = [f"{k} [{dims[k]}]" for k, t in args.items() if t.ndim >= 2 and set(t.shape[-2:]) == clash]

            other = other_tensor_cause(err, args, dims, clash, out_dims) if out_dims else ""
            causes = _clash_causes(what, _failing_span(frames) or line, pairs)
            causes = causes if other.startswith(";") or not other else f"the clash is {what}{other}"
            causes = causes.replace("; print both", f"{other}; print both") if other.startswith(";") else causes
            hint += f". The failing operation ({line.strip()}) is elementwise, not a matrix product: " + causes
        elif op == "matmul" or "@" in line or "matmul" in line or "bmm" in line:
            hint += (
                f". The failing line multiplies matrices ({line.strip()}): a batched matmul treats every axis but "
                "the last two as batch axes and lines them up from the right, so [batch inst d_in] @ [inst d_in C] "
                "pairs batch with inst; use einsum with named axes (or move the axes so they line up)"
            )
        raise CheckFailed(described.message, hint, code="broadcast") from None


def _clash_causes(what: str, line: str, pairs: list[str]) -> str:
    """The causes of an elementwise clash between sizes `what`: a transposed operand when both sizes are the last two
    axes of one input (`pairs`) and the line transposes something; an operand with more or fewer axes when the line
    adds axes; both when nothing on the line tells them apart."""
    moved = re.search(r"\.mT\b|\.T\b|\.t\(\)|transpose|permute|swapaxes|movedim", line)
    start = f"broadcasting lines up its operands' last axes, and the clash is {what}"
    extra = (
        "one operand has more or fewer axes than intended (an extra None/unsqueeze, or one missing), so its axes sit "
        "under the wrong axes of the other"
    )
    if not pairs or re.search(r"None|unsqueeze", line):
        return f"{start}: {extra}; print both operands' shapes"
    both = f"the last two axes of {' and of '.join(pairs)}"
    if moved:
        return (
            f"{start}, {both}, and the failing expression transposes an operand (`{moved[0]}`): a transposed operand "
            f"puts each of these sizes under the other ({pairs[0]} as given, not transposed): drop the transpose, "
            "or transpose the other side too; print both operands' shapes"
        )
    return (
        f"{start}, {both}. Possible causes: one operand transposed (its last two axes swapped, so each sits under "
        f"the other); or {extra}; print both operands' shapes"
    )


def ascent_hint(out: Tensor, init: Tensor, n_steps: int, step: float, right: Tensor) -> tuple[str, str] | None:
    """(code, hint) from what the returned sources look like: their range, and how far they moved from `init`
    (compared with how far the right ones moved)."""
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
    if n_steps > 1 and far < step + 1e-5 < float((right - init).abs().max()):
        inside = (out > 1e-6) & (out < 1 - 1e-6)
        moves = (out - init).abs()[inside & ((out - init).abs() > 1e-6)]
        if len(moves) and float(moves.min()) < step - 1e-5:  # a whole step (or a clamp) can't end there
            return "small_steps", (
                f"after {n_steps} steps no entry is more than one step ({step}) from where it started, and some "
                f"moved by less than a step without reaching 0 or 1 ({_moves_seen(moves, n_steps, step)}): every "
                "step moves each entry by ±step_size, so are the steps smaller than step_size (step_size / n_steps, "
                "or a scaled step)? Restarting every step from init, a single step, or a projection around the "
                "starting point (an ε-ball of radius step_size, as in PGD) would also keep every entry within one step"
            )
        return "within_one_step", (
            f"after {n_steps} steps no entry is more than one step ({step}) from where it started, while the right "
            "sources move further: does every step start again from init instead of the current sources, was only "
            "one step taken, or is there a projection around the starting point (an ε-ball, as in PGD)?"
        )
    return None


def _moves_seen(moves: Tensor, n_steps: int, step: float) -> str:
    """The distinct net moves, and whether they fit n_steps steps of step / n_steps (net n_steps - 2j of them)."""
    seen = sorted({round(float(m), 4) for m in moves})
    out = "moves seen: " + ", ".join(f"{m:.4g}" for m in seen[:4]) + (", ..." if len(seen) > 4 else "")
    k = moves / (step / n_steps)
    fits = ((k - k.round()).abs() < 1e-3).all() and (k.round() % 2 == n_steps % 2).all()
    if len(seen) > 1 and fits:
        out += f", as {n_steps} steps of step_size / n_steps = {step / n_steps:.4g} give"
    return out


def unmoved_sources(out: list[Tensor], init: list[Tensor], right: list[Tensor]) -> tuple[str, str] | None:
    """(code, hint) when some sources are returned as they started while the right ones moved (and others moved)."""
    still = [
        n
        for n, (o, i, r) in enumerate(zip(out, init, right, strict=True))
        if torch.equal(o, i) and not torch.equal(r, i)
    ]
    if still and len(still) < len(out):
        names = ", ".join(f"sources[{n}]" for n in still)
        return "unmoved_source", (
            f"{names} never moved from init while the other sources did: every step updates every source "
            "(loop over all of them, and give each its own gradient)"
        )
    return None


# --------------------------------------------------------------------------------------------
# Calls that raise: a size clash whose sizes say what went wrong
# --------------------------------------------------------------------------------------------
def call_naming_sizes(fn: Callable, args: tuple, sizes: set[int] | None, hint: Any, code: str) -> Any:
    """fn(*args); an error raised in the learner's code whose message names every size in `sizes` (a clash
    between exactly these sizes) gets `hint` (a str, or hint(err)): what those sizes are, what usually produces them."""
    try:
        return fn(*args)
    except RuntimeError as err:
        frames = traceback.extract_tb(err.__traceback__)
        numbers = {int(n) for n in re.findall(r"\d+", str(err))}
        if not sizes or not sizes <= numbers or not any(_is_learner_frame(f.filename) for f in frames):
            raise
        raise CheckFailed(_describe_error(err).message, hint(err) if callable(hint) else hint, code=code) from None


def ignored_argument(impl: Callable, args: tuple, base: Tensor, probes: dict[int, tuple[str, Any]]):
    """(code, hint) when calling impl(*args) again with one argument changed (position -> (name, other value))
    returns the same value `base`: that argument is ignored, or a fixed value is used in its place. The caller
    probes only arguments the right answer depends on, and only once the value is known to be wrong."""
    flat = lambda out: torch.cat([torch.as_tensor(t).detach().double().flatten() for t in out])
    for i, (name, value) in probes.items():
        changed = list(args)
        changed[i] = value
        try:
            out = impl(*changed)
            same = torch.allclose(flat(out if isinstance(out, list | tuple) else [out]), base.double(), 1e-6, 1e-9)
        except Exception:  # a probe that fails says nothing
            continue
        if same:
            return f"{name}_ignored", (
                f"your value doesn't change when {name} does ({name} = {args[i]} and {value} give the same): use "
                f"the {name} you are given, not a fixed value"
            )
    return None


# --------------------------------------------------------------------------------------------
# Values in the wrong places
# --------------------------------------------------------------------------------------------
def layout_mistakes(right: Tensor, dims: str, same_shape: str | None = None) -> Mistakes:
    """What comes back when the axes were moved with reshape (or view) instead of permute: the right values laid
    out in another axis order, then reshaped to the asked shape (reshape keeps the memory order). Orders whose
    shape already is the asked one are pure permutations, left to the generic `transposed` diagnosis unless
    `same_shape` gives them a code (where sizes coincide, the order is named: a permute and a reshape look alike)."""
    names, out = dims.split(), []
    for perm in itertools.permutations(range(right.ndim)):
        shape = tuple(right.shape[i] for i in perm)
        order = " ".join(names[i] for i in perm)
        if shape == tuple(right.shape) and same_shape and list(perm) != sorted(perm):
            hint = (
                f"your values are the right ones with their axes in the order [{order}] (your shape is right only "
                f"because sizes coincide here): an einsum or permute written in that order, or values computed as "
                f"[{order}] and then reshaped or viewed to [{dims}] (reshape and view keep the memory order and don't "
                f"move axes)? Use permute (or einops.rearrange '{order} -> {dims}')"
            )
            out.append((same_shape, hint, right.permute(*perm)))
        if shape != tuple(right.shape):
            hint = (
                f"your values are the right ones computed as [{order}] and then reshaped to [{dims}]: reshape (and "
                f"view) keep the memory order and don't move axes; use permute (or einops.rearrange '{order} -> "
                f"{dims}')"
            )
            out.append(("reshape_not_permute", hint, right.permute(*perm).reshape(right.shape)))
    return out


# --------------------------------------------------------------------------------------------
# Random draws: their law, and whether two sets of draws are shared
# --------------------------------------------------------------------------------------------
def shared_draws(u: Tensor, v: Tensor) -> bool:
    """Whether u and v [n, ...] (n examples) share their random draws: they agree much more often than u and v
    one example apart, whatever the law (a continuous one, where independent draws never agree, or coin flips,
    where they agree half the time).

    Tolerance: for independent draws, identically distributed along the examples, both rates have the same
    expectation q. The aligned rate is a mean over n independent rows, the shifted one over two interleaved sets of
    n/2 independent rows (pairs (u[i-1], v[i]) with i of one parity share nothing), so by Hoeffding each deviates
    from q by more than 0.125 with probability at most 2 exp(-2 (n/2) 0.125²) per set, below 1e-26 for n = 4000:
    a gap above 0.25 never happens to a correct answer; shared draws give a gap of 1 - q, at least 0.5 for
    continuous laws (q = 0) and fair coins (q = 1/2)."""
    same = lambda a, b: float(torch.isclose(a, b, rtol=0, atol=1e-5).float().mean())
    aligned = same(u, v)
    return aligned > 0.5 and aligned - same(u.roll(1, 0), v) > 0.25


def discrete_values(t: Tensor) -> list[float] | None:
    """The values of t [n, ...] when every cell takes few of them (at most n / 4 distinct among its n draws, and
    not just one), else None. A continuous law rounded to 1e-5 takes about n (1 - n / 2e5) distinct values, 3920
    for n = 4000; the count changes by at most 1 per draw, so by McDiarmid it falls below n / 4 = 1000 with
    probability at most exp(-2 · 2920² / 4000) = exp(-4263)."""
    cells = (t.detach().double().reshape(t.shape[0], -1) * 1e5).round()
    s = cells.sort(0).values
    distinct = 1 + (s[1:] != s[:-1]).sum(0)
    if not 1 < int(distinct.max()) <= t.shape[0] // 4:  # one value per cell: shared over the batch, tested apart
        return None
    return [v / 1e5 for v in cells.unique()[:6].tolist()]


def law(values: list[float]) -> str:
    shown = ", ".join(f"{v:.3g}" for v in values[:5]) + (", ..." if len(values) > 5 else "")
    return f"only a few distinct values ({shown})"


def check_not_shared(r: Tensor, what: str) -> None:
    """r [n inst C]: fresh randomness along every axis."""
    if (r.std(0) < 1e-6).all():
        same = lambda axis: r.shape[axis] < 2 or bool((r - r.narrow(axis, 0, 1)).abs().max() < 1e-5)
        also = [name for axis, name in ((1, "instance"), (2, "subcomponent")) if same(axis)]
        shared = ", ".join(["example", *also][:-1]) + f" and {also[-1]}" if also else ""
        fail(
            f"{what}: every example in the batch got the same random draw"
            + (
                f" (one draw for every {shared}{': one number for the whole mask' if len(also) == 2 else ''})"
                if also
                else ""
            ),
            f"masks drawn once per batch{' (a single torch.rand(1)?)' if len(also) == 2 else ''} instead of per "
            "example: draw a random number for every entry (every example, instance and subcomponent), e.g. "
            "torch.rand_like(g)",
            code="shared_over_batch",
        )
    if r.shape[-1] > 1 and shared_draws(r[..., 0], r[..., 1]):
        inst = r.shape[1] > 1 and shared_draws(r[:, 0], r[:, 1])  # one draw per example: rand(batch, 1, 1)
        fail(
            f"{what}: all subcomponents {'and instances ' if inst else ''}of an example share one random draw",
            f"draw a separate r for every {'instance and ' if inst else ''}subcomponent (shape [batch inst C])",
            code="shared_over_components",
        )
    if shared_draws(r[:, 0], r[:, 1]):
        fail(
            f"{what}: the instances share their random draws",
            "draw a separate r for every instance",
            code="shared_over_instances",
        )


def check_delta(d: Tensor, layer: int, r: Tensor, mask: Tensor) -> None:
    """The delta mask d [n inst] of matrix `layer`: its range, its law, fresh draws (not r's, the masks' ones)."""
    if (d == 1).all():
        fail(
            f"delta mask {layer} is all ones",
            "the delta mask was forgotten: the delta gets its own random scale m_Δ ~ U[0, 1], one per example",
            code="delta_ones",
        )
    if (d == 0).all():
        fail(
            f"delta mask {layer} is all zeros",
            "the delta is not switched off: it gets a random scale m_Δ ~ U[0, 1], one per example",
            code="delta_zeros",
        )
    if (d < 0).any() or (d > 1).any():
        fail(
            f"delta mask {layer} has values outside [0, 1] ({d.min():.2f} to {d.max():.2f})",
            "draw it with torch.rand: U[0, 1]",
            code="delta_range",
        )
    values = discrete_values(d)
    if values is not None:
        fail(
            f"delta mask {layer} takes {law(values)} over {d.shape[0]} draws",
            "the delta mask is uniform on [0, 1], a continuous value (torch.rand), not a coin flip or a whole "
            "number (torch.randint, torch.bernoulli, rand > 0.5)",
            code="delta_discrete",
        )
    check_not_shared(d[..., None], f"delta mask {layer}")
    cols = [c for c in range(r.shape[-1]) if shared_draws(d, r[..., c]) or shared_draws(d, mask[..., c])]
    if cols:  # any column: r[..., 0] and r[..., -1] (the last of the masks' own draw) are both realistic
        fail(
            f"delta mask {layer} reuses the subcomponents' random numbers (those of subcomponent {cols[0]})",
            "draw the delta mask separately",
            code="delta_reuse",
        )


def check_uniform(r: Tensor, what: str, dims: str, n_tests: int, hint: str, code: str) -> None:
    """Every cell of r [n, ...] has the mean and mean square of U[0, 1] (Bernstein bounds, union over n_tests)."""
    tol_mean, tol_sq = uniform_moments_tolerance(r.shape[0], 0.0, 1.0, n_tests)
    mean, sq = r.double().mean(0), r.double().pow(2).mean(0)
    bad = ((mean - 0.5).abs() > tol_mean) | ((sq - 1 / 3).abs() > tol_sq)
    if bad.any():
        idx = tuple(int(i) for i in bad.nonzero()[0])
        where = ", ".join(f"{n} {i}" for n, i in zip(dims.split(), idx, strict=True))
        hint += _law_observation(r[(slice(None), *idx)], float(mean[idx]), float(sq[idx]), tol_mean, r.flatten())
        fail(
            f"{what} at {where}: mean {mean[idx]:.3f} and mean square {sq[idx]:.3f}, expected 0.500 ± {tol_mean:.3f} "
            f"and 0.333 ± {tol_sq:.3f} (uniform on [0, 1])",
            hint,
            code=code,
        )


ABOVE_ONE_SLIPS = {  # laws above 1 (span_law's formula) and the slip that gives them
    "g + 1·r": ": g + r can exceed 1, scale the random part: m = g + (1 - g) r",
    "1 + g·r": (
        ": g + 1 - g·r = 1 + g(1 - r) is that law, operator precedence: the parentheses around (1 - g) dropped? "
        "m = g + (1 - g) * r"
    ),
}


def diagnose_range(m: Tensor, g: Tensor, layer: int, span: Callable | None = None) -> None:
    """Masks outside [g, 1]: name the distribution that was drawn (`span(m, g)`: the span the draws cover and the
    formula that gives it, when their ends are lines in g)."""
    r = (m - g) / (1 - g)
    what = f"mask {layer}"
    if r.min() < -0.5 and r.max() > 1.5:
        fail(
            f"{what} has values below g and above 1 (r = (m - g) / (1 - g) spans [{r.min():.2f}, {r.max():.2f}])",
            "r looks normal: draw it uniform on [0, 1] with torch.rand, not torch.randn",
            code="normal",
        )
    if (m > 1 + 1e-6).any():
        hint = "m = g + (1 - g) r lies in [g, 1]"
        law = span(m, g) if span is not None else None
        if law is not None:  # the law the draws follow names the formula (g + r, or precedence: 1 + g(1 - r))
            hint = f"your masks behave as m = {law[1]} with r uniform on [0, 1] (or 1 - r: the same law), "
            hint += f"spanning {law[0]}"
            hint += ABOVE_ONE_SLIPS.get(law[1], ": m = g + (1 - g) r lies in [g, 1]")
        elif ((m - g) >= -1e-6).all() and (m - g <= 1 + 1e-6).all():
            hint = "m - g lies in [0, 1] but m exceeds 1: is the random part scaled by (1 - g)? m = g + (1 - g) r"
        fail(f"{what} has values above 1 (max {m.max().item():.3f})", hint, code="above_one")
    if (m < g - 1e-6).any():
        cell_means = m.mean(0)
        if (m >= -1e-6).all() and ((cell_means - 0.5).abs() < 0.05).all():
            fail(
                f"{what} has values below its causal importance g, and its mean is 1/2 whatever g is",
                "the mask ignores g: it lies between g and 1, m = g + (1 - g) r",
                code="ignores_g",
            )
        if (m >= -1e-6).all() and (m <= g + 1e-6).all():
            fail(
                f"{what} lies between 0 and g, not between g and 1",
                "m = g · r shrinks towards 0; it should lie between g and 1: m = g + (1 - g) r",
                code="below_g",
            )
        if r.min() > -1 - 1e-4 and r.min() < -0.9:
            fail(
                f"{what} has values below g: r = (m - g) / (1 - g) spans [{r.min():.2f}, {r.max():.2f}]",
                "r is uniform on [-1, 1]: draw it on [0, 1] (torch.rand)",
                code="signed_uniform",
            )
        if span is not None and (law := span(m, g)) is not None:
            fail(
                f"{what} has values below its causal importance g: its draws span {law[0]} (the smallest and largest "
                f"of each cell's {m.shape[0]} draws, against the cell's g), where m = g + (1 - g) r spans [g, 1]",
                f"your masks behave as m = {law[1]} with r uniform on [0, 1] (or 1 - r: the same law); the mask is "
                "m = g + (1 - g) r",
                code="mask_span",
            )
        fail(
            f"{what} has values below its causal importance g (e.g. {m[m < g - 1e-6][0]:.3f})",
            "a mask lies between its causal importance g and 1: m = g + (1 - g) r",
            code="below_g",
        )


CLAMP_EXAMPLES = {1.0: "e.g. (g + r).clamp(max=1) instead of g + (1 - g) r", 0.0: "at the low end of the draw"}


def _law_observation(cell: Tensor, mean: float, sq: float, tol_mean: float, pool: Tensor) -> str:
    """What a failing cell's draws look like (only called once they failed the uniform test): an atom at 0 or 1
    (values piled up there, as a clamp does), or the right mean with the spread of a mean of k uniform draws."""
    for end in (1.0, 0.0):
        share = float(((cell - end).abs() < 1e-6).double().mean())
        if share > 0.01:
            return (
                f". {share:.0%} of the draws are exactly {end:g}, where a uniform law puts none: values piled up "
                f"there, as a clamp does ({CLAMP_EXAMPLES[end]})?"
            )
    var = sq - mean**2
    if power := power_observation(pool):  # r ** q or 1 - r ** q: a read-back of the whole law
        return power
    if abs(mean - 0.5) > tol_mean or var <= 0:
        return ""
    k = round(1 / 12 / var)
    if var < 1 / 12 and k >= 2 and mean_of_uniforms_fits(pool, k):
        return (
            f". The mean is right but the variance is {var:.3f}, about 1/{k} of a uniform's 1/12, and the draws of "
            f"every cell together follow the law of a mean of {k} independent uniform draws: a mean over an axis (or "
            "of several draws)? Draw one value per entry"
        )
    where = "crowd towards the middle" if var < 1 / 12 else "crowd towards 0 and 1"
    mean_of_draws = ", or a mean of several draws (over an axis?)" if var < 1 / 12 else ""  # a mean narrows it
    ruled = "" if var < 1 / 12 else " (so not a mean of several draws: a mean narrows the spread)"
    return (
        f". The mean is right but the variance is {var:.3f} (a uniform's is 1/12 = 0.083): the draws {where}{ruled}. "
        "Possible causes: r drawn from a different distribution (a sigmoid of a normal, a Beta, ...) or a transform "
        f"of a uniform draw{mean_of_draws}; draw r = torch.rand_like(g)"
    )


def mean_of_uniforms_fits(pool: Tensor, k: int) -> bool:
    """Whether draws `pool` follow the law of the mean of k independent U[0, 1] draws (the Irwin-Hall law scaled by
    1/k): a Kolmogorov-Smirnov distance within the DKW bound sqrt(ln(2/δ) / (2n)), δ = 1e-6. Draws of that law pass
    with probability 1 - δ; a sigmoid of a standard normal sits 0.0235 from the k = 2 law, beyond the bound
    (0.0123) for the 48000 pooled draws of one matrix's masks. Fewer than 32000 draws (a bound above 0.015, too
    loose to tell such laws apart) never fit: the hint then lists causes instead of asserting one."""
    xs = pool[torch.isfinite(pool)].double().sort().values
    n = xs.numel()
    if n < 32000:
        return False
    s = xs * k
    cdf = sum((-1) ** j * math.comb(k, j) * (s - j).clamp(min=0) ** k for j in range(k + 1)) / math.factorial(k)
    i = torch.arange(1, n + 1, dtype=torch.float64, device=xs.device)
    ks = float(torch.maximum((i / n - cdf).abs(), ((i - 1) / n - cdf).abs()).max())
    return ks <= math.sqrt(math.log(2 / 1e-6) / (2 * n))


def recon_reductions() -> dict[str, tuple[Callable[[Tensor], Tensor], str]]:
    """Every other combination of mean/sum over (output dims, batch, instances) of the squared differences [batch
    inst d_out], for two axes or more reduced the wrong way (one axis each has its own code)."""
    asked = {"output dims": "mean", "the batch": "mean", "instances": "sum"}
    out = {}
    for hows in itertools.product(("mean", "sum"), repeat=3):
        wrong = [
            f"a {how} over {axis} where a {asked[axis]} was asked"
            for axis, how in zip(asked, hows, strict=True)
            if how != asked[axis]
        ]
        if len(wrong) < 2:
            continue

        def reduce(d: Tensor, hows: tuple[str, ...] = hows) -> Tensor:
            sq = d.pow(2)
            sq = sq.mean(-1) if hows[0] == "mean" else sq.sum(-1)
            sq = sq.mean(0) if hows[1] == "mean" else sq.sum(0)
            return sq.mean() if hows[2] == "mean" else sq.sum()

        hint = f"{' and '.join(wrong)}: the loss is the MSE over output dims and batch, summed over instances"
        out["reduce_" + "_".join(hows)] = (reduce, hint)
    return out


def sigmoid_forward_candidates(x: Tensor, alpha: float, lower: bool) -> tuple[Tensor, Mistakes]:
    leak = (
        torch.where(x < 0, alpha * x, x.clamp(max=1))
        if lower
        else torch.where(x > 1, 1 + alpha * (x - 1), x.clamp(min=0))
    )
    hint = "the forward pass is the plain hard sigmoid clamp(x, 0, 1): the leak is only in the gradient"
    return x.clamp(0, 1), [
        ("leaky_forward", hint, torch.where(x < 0, alpha * x, torch.where(x > 1, 1 + alpha * (x - 1), x))),
        ("leaky_forward", hint, leak),
        ("sigmoid", "use the hard sigmoid clamp(x, 0, 1), not the smooth torch.sigmoid", torch.sigmoid(x)),
        (
            "torch_hardsigmoid",
            "F.hardsigmoid is relu6(x + 3) / 6, another function: use x.clamp(0, 1)",
            F.hardsigmoid(x),
        ),
        ("no_clamp", "forward returns the hard sigmoid: clamp x to [0, 1]", x.clone()),
        ("relu", "clamp from above too: the hard sigmoid is clamp(x, 0, 1), not a ReLU", x.clamp(min=0)),
    ]


def merged_axes(out: Any, shape: tuple[int, ...], dims: str) -> None:
    """Fails when `out` has one axis fewer than `shape`, that axis being the product of two neighbouring expected
    axes: the pieces were joined along an existing axis (torch.cat) where a new one was needed (torch.stack)."""
    if not isinstance(out, Tensor) or out.ndim != len(shape) - 1:
        return
    names = dims.split()
    for i in range(len(shape) - 1):
        if tuple(out.shape) == (*shape[:i], shape[i] * shape[i + 1], *shape[i + 2 :]):
            fail(
                f"your output has shape {tuple(out.shape)}, expected {tuple(shape)} [{dims}]: its axis {i} of size "
                f"{out.shape[i]} = {names[i]} {shape[i]} × {names[i + 1]} {shape[i + 1]}",
                f"the `{names[i]}` and `{names[i + 1]}` axes were merged into one: torch.cat joins pieces along an "
                "existing axis, torch.stack puts them along a new one (or a reshape/flatten merged the two axes)",
                code="merged_axes",
            )


def regions_hint(out: Tensor, right: Tensor, x: Tensor, per: Tensor | None, alpha: float, what: str) -> str:
    """Where a function of x (its values, or its slope out / per) disagrees with the right one, region by region
    (x < 0, 0 <= x <= 1, x > 1): the value seen there (a constant, named when it is 0, 1 or alpha, or how it varies
    with x), and the expected one. Empty when every region agrees."""
    names = slope_names(alpha)  # 0, 1, alpha, 1 - alpha, -alpha, 1 / alpha, 1 + alpha
    ok = per is None or per.abs().gt(1e-3).all()
    if not ok:
        per = torch.where(per.abs() > 1e-3, per, torch.ones_like(per))
    seen, want = (out, right) if per is None else (out / per, right / per)

    def constant(v: Tensor) -> str | None:
        if v.numel() == 0 or float(v.max() - v.min()) >= 1e-4:
            return None
        c = float(v.mean())
        named = [n for k, n in names.items() if abs(c - k) < 1e-4]
        return named[0] if named else f"{c:.4g}"

    def describe(v: Tensor, xs: Tensor, sign: Tensor | None) -> str:
        if (c := constant(v)) is not None:
            return c
        if torch.allclose(v, xs, atol=1e-4):
            return "x itself"
        if sign is not None and (pos := constant(v[sign > 0])) and (neg := constant(v[sign < 0])):
            return f"{pos} where grad_output > 0 but {neg} where grad_output < 0"
        if sign is not None and (c := constant(v / sign)) is not None:
            return f"{c} × grad_output itself"
        return varying(v, xs)

    parts = []
    for name, region in (("below 0", x < 0), ("on [0, 1]", (x >= 0) & (x <= 1)), ("above 1", x > 1)):
        s, w = seen[region], want[region]
        if region.any() and not torch.allclose(s, w, rtol=1e-4, atol=1e-5):
            sign = None if per is None else per[region]
            parts.append(f"{name} it is {describe(s, x[region], sign)} (expected {describe(w, x[region], None)})")
    if not parts:
        return ""
    seen_parts = [p.split("(expected")[0] for p in parts]
    varies = any("changes with x" in p for p in seen_parts) and per is not None
    extra = ": a slope must be a constant per region (the function's value, e.g. 1 + alpha (x - 1), is not)" * varies
    if any("× grad_output itself" in p for p in seen_parts):
        extra = (
            ": your slope grows with the incoming gradient, so the gradient there is grad_output² times a constant: "
            "grad_output was multiplied in twice (inside the slope, e.g. in a torch.where branch, and again outside)"
        )
    if any("where grad_output < 0" in p for p in seen_parts):
        zeroed = any("but 0 where grad_output < 0" in p for p in seen_parts)
        extra = ": your slope depends on the sign of the incoming gradient, which it must not (backward returns "
        extra += "grad_output times the slope, whatever grad_output's sign)" + zeroed * (
            ": negative incoming gradients were zeroed (a .relu() or clamp(min=0) on the gradient?)"
        )
    return f"{what} " + "; ".join(parts) + extra
