"""The machinery every section's checkers share.

A checker is a function ``test_<exercise>(impl, device=None)`` decorated with ``@checker(...)``.
The decorator gives every checker the same contract:

* it runs seeded, inside a forked RNG, so the learner's random state is left alone;
* a stub (``NotImplementedError``) becomes one line: "not implemented yet";
* an exception inside the learner's code is named first, with a traceback of the learner's frames only;
* a failed expectation raises :class:`CheckFailed` with a message, a hint and a short ``code``
  (the pytest suite asserts on the code, so hints can be reworded freely);
* success prints one line.

The grader (tools/grade.py) records nothing from here: it calls each checker itself and reads what it
returns or raises.

In a notebook the exceptions render as a short red message instead of a traceback wall
(IPython calls ``_render_traceback_`` when an exception defines it).
"""

from __future__ import annotations

import functools
import inspect
import itertools
import math
import random
import re
import traceback
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from tests.autograd_inplace import inplace_reading
from tests.input_edits import reference_no_longer_reproduces
from tests.learner_errors import _error_hint, _is_learner_frame, _line_shapes
from tests.mutants import Reference, one_change_diagnosis, two_change_diagnosis
from tests.outcomes import CheckFailed, CheckOutcome, NotDone, fail
from tests.output_clashes import first_sentence, output_reading
from tests.precision import precision_reading
from tests.regions import describe_disagreement, region_of_disagreement
from tests.returned_inputs import returned_input_hint
from tests.sizes import (
    clear_notes,
    factor_reason,
    input_sizes,
    name_size,
    register_checker,
    reset_notes,
    size_relation,
)
from utils.device import get_device

CHECK_SEED = 1234
_GREEN, _DIM, _RESET = "\x1b[32m", "\x1b[2m", "\x1b[0m"


def inplace_failure(err: BaseException, what: str) -> None:
    """Fail (code inplace_autograd) when `err` is autograd's in-place error from a checker's backward over `what`."""
    if inplace := inplace_reading(err, what):
        fail(*inplace, code="inplace_autograd")


# --------------------------------------------------------------------------------------------
# The decorator
# --------------------------------------------------------------------------------------------
def checker(exercise: str, kind: str | None = None) -> Callable:
    """Turn ``fn(impl, device)`` into a learner-facing checker for ``exercise``.

    `kind` ("class" or "function") is what the learner passes; the wrong kind of object (None, an
    instance instead of its class, a class instead of a function) is named before anything runs.
    """
    if kind not in (None, "class", "function"):
        raise ValueError(f"kind must be 'class', 'function' or None, got {kind!r}")

    def decorate(fn: Callable) -> Callable:
        register_checker(fn)  # its local variables name the sizes in its hints

        @functools.wraps(fn)
        def run(impl: Any = None, device: str | torch.device | None = None) -> None:
            device = torch.device(device) if device is not None else get_device()
            notes = clear_notes()
            try:
                expect_kind(impl, kind)
                with seeded(CHECK_SEED, device):
                    detail = fn(impl, device)
            except CheckOutcome as outcome:
                outcome.exercise = exercise
                raise outcome.with_traceback(None) from None
            except NotImplementedError as err:
                # a stub raises it itself; one raised inside torch (an op without a kernel for that dtype) is an error
                last = Path(traceback.extract_tb(err.__traceback__)[-1].filename).parts
                torch_said = re.search(r"not implemented for|Could not run|not currently implemented", str(err))
                stub = not torch_said and not {"site-packages", "dist-packages"} & set(last)
                outcome = (
                    NotDone(f"not implemented yet ({_raised_by(err)} raises NotImplementedError)")
                    if stub
                    else _describe_error(err)
                )
                outcome.exercise = exercise
                raise outcome from None
            except Exception as err:  # an error in the learner's code, or on their output
                outcome = _describe_error(err)
                outcome.exercise = exercise
                raise outcome from None
            finally:
                reset_notes(notes)
            suffix = f" {_DIM}({detail}){_RESET}" if isinstance(detail, str) and detail else ""
            print(f"{_GREEN}✅ {exercise}: passed{_RESET}{suffix}")

        run.exercise = exercise
        run.kind = kind
        return run

    return decorate


def expect_kind(impl: Any, kind: str | None) -> None:
    """Fail with a one-line hint when the learner passed the wrong kind of object to a check."""
    if impl is None:
        fail(
            "the check was given None",
            "pass the name of what you wrote (the class or function itself, without calling it)",
            code="passed_none",
        )
    if kind == "class" and not inspect.isclass(impl):
        if callable(impl) and not isinstance(impl, torch.nn.Module):
            hint = "this check takes the class that defines the method, not a function"
        else:
            hint = f"pass the class itself (`{type(impl).__name__}`), not an instance of it"
        fail(f"expected a class, got {type(impl).__name__} {impl!r:.60}", hint, code="not_a_class")
    if kind == "function" and (inspect.isclass(impl) or not callable(impl)):
        what = f"the class {impl.__name__}" if inspect.isclass(impl) else f"a {type(impl).__name__}"
        fail(
            f"expected a function, got {what}",
            "pass the function you wrote (its name, not a call)",
            code="not_a_function",
        )


class seeded:
    """Seed torch, numpy and random inside a fork of the RNG state (restored on exit)."""

    def __init__(self, seed: int, device: torch.device):
        self.seed = seed
        cuda = device.type == "cuda" and torch.cuda.is_available()
        self._fork = torch.random.fork_rng(devices=[device] if cuda else [])

    def __enter__(self) -> None:
        self._np, self._py = np.random.get_state(), random.getstate()
        self._fork.__enter__()
        torch.manual_seed(self.seed)
        np.random.seed(self.seed)
        random.seed(self.seed)

    def __exit__(self, *exc: object) -> None:
        self._fork.__exit__(*exc)
        np.random.set_state(self._np)
        random.setstate(self._py)


def _raised_by(err: BaseException) -> str:
    frames = traceback.extract_tb(err.__traceback__)
    for frame in reversed(frames):
        if _is_learner_frame(frame.filename):
            return f"`{frame.name}`"
    return "your code"


def _describe_error(err: Exception) -> CheckFailed:
    """The one-line outcome for an exception raised while checking: the learner's error with its frames and a hint,
    or the checker's own trouble with their output. Describing it can never raise in turn."""
    try:
        return _described(err)
    except Exception:
        return CheckFailed(f"your code raised {type(err).__name__}", code="exception")


def _described(err: Exception) -> CheckFailed:
    frames = [f for f in traceback.extract_tb(err.__traceback__) if _is_learner_frame(f.filename)]
    kind = f"{type(err).__name__}: {err}"
    if not frames:
        if inplace := inplace_reading(err, "your output"):  # the checker's backward met the learner's in-place edit
            return CheckFailed(*inplace, code="inplace_autograd")
        every = traceback.extract_tb(err.__traceback__)
        if every and Path(every[-1].filename).name == "function.py" and "autograd" in every[-1].filename:
            # torch's autograd machinery raised while running a learner's torch.autograd.Function
            return CheckFailed(
                f"torch rejected your autograd Function while running it: {kind}",
                "ctx.save_for_backward takes tensors only: keep other values as attributes (ctx.alpha = alpha)"
                if "save_for_backward" in str(err)
                else "check what forward and backward take and return: backward returns one gradient (or None) per "
                "input of forward, each shaped like that input",
                code="autograd_function",
            )
        if reading := output_reading(err):  # a dtype clash or a sparse tensor met by the checker's own code
            return CheckFailed(*reading[:2], code=reading[2])
        return CheckFailed(
            f"checking your output raised {first_sentence(kind)}",
            "the output probably has the wrong type or shape for what the exercise asks",
            code="bad_output",
        )
    lines = "".join(traceback.format_list(frames[-3:])).rstrip()
    hint = _error_hint(err)
    if hint and re.search(r"size|shape|einsum|dimension", str(err)):
        hint += _line_shapes(err)
    return CheckFailed(f"your code raised {kind}\n{lines}", hint, code="exception")


# --------------------------------------------------------------------------------------------
# Calling the learner's code
# --------------------------------------------------------------------------------------------
def returned(value: Any, what: str) -> Any:
    """Fail clearly when the learner's function returned None (a missing ``return``)."""
    if value is None:
        fail(
            f"{what} returned None",
            "did you forget the `return` statement, or does an if/elif chain leave a case without one (a boundary "
            "value such as ==, that neither `<` nor `>` covers)?",
            code="returned_none",
        )
    return value


# --------------------------------------------------------------------------------------------
# Tensors
# --------------------------------------------------------------------------------------------
def expect_tensor(
    x: Any,
    what: str,
    shape: Sequence[int] | None = None,
    dims: str | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | None = None,
    finite: bool = True,
) -> Tensor:
    """Check the type, shape, dtype, device and finiteness of a learner's output, in that order.

    ``dims`` names the axes (e.g. ``"batch inst feats"``) so a wrong shape is reported by name.
    """
    returned(x, what)
    if not isinstance(x, Tensor):
        fail(f"{what} should be a torch.Tensor, got {type(x).__name__}", _not_tensor_hint(x), code="not_tensor")
    if x.layout != torch.strided:
        fail(
            f"{what} is a sparse tensor (layout {x.layout})",
            "return a dense tensor (drop .to_sparse(), or call .to_dense()): zeros are part of the answer",
            code="sparse",
        )
    if x.device.type == "meta":
        fail(
            f"{what} is a meta tensor (a shape without data)",
            "create real tensors: device='meta' (or torch.empty on the meta device) holds no values",
            code="device",
        )
    if shape is not None and tuple(x.shape) != tuple(shape):
        expected = _named_shape(shape, dims)
        fail(f"{what} has shape {tuple(x.shape)}, expected {expected}", _shape_hint(x.shape, shape, dims), code="shape")
    if dtype is not None and x.dtype != dtype:
        fail(f"{what} has dtype {x.dtype}, expected {dtype}", _dtype_hint(x.dtype, dtype), code="dtype")
    if device is not None and not _same_device(x.device, device):
        fail(
            f"{what} is on {x.device}, expected {device}",
            "create new tensors on the input's device (e.g. `device=self.W.device`)",
            code="device",
        )
    if finite and x.is_floating_point() and not torch.isfinite(x).all():
        n_bad = int((~torch.isfinite(x)).sum())
        fail(f"{what} contains {n_bad} NaN or infinite values", code="not_finite")
    return x


def _not_tensor_hint(x: Any) -> str:
    """What usually returns `x` where a tensor was asked."""
    if isinstance(x, torch.autograd.Function) or (inspect.isclass(x) and issubclass(x, torch.autograd.Function)):
        name = x.__name__ if inspect.isclass(x) else type(x).__name__
        return f"a torch.autograd.Function is used through its .apply: `{name}.apply(z, ...)`, not `{name}(z, ...)`"
    if isinstance(x, (np.ndarray, np.generic)):
        return "a numpy result (np.* functions or .numpy()): stay in torch (torch.* and tensor methods)"
    if type(x).__module__ == "torch.return_types":  # max/min/topk/sort/median/mode along a dim
        name = type(x).__name__
        pair = f"`{name}(...)` along a dim returns a (values, indices) pair: take `.values` (or `.indices`, as asked)"
        return pair + (f", or use torch.a{name}, which returns the values alone" if name in ("max", "min") else "")
    if isinstance(x, (tuple, list)):
        return "a Python sequence: stack its tensors (torch.stack) or return the one tensor asked for, not a tuple"
    if isinstance(x, (int, float, bool)):
        return "a Python number (.item(), float(...), math.* or the builtin sum/max): keep the tensor"
    return "return a tensor, computed with torch operations"


def _dtype_hint(got: torch.dtype, want: torch.dtype) -> str:
    """What usually gives `got` where `want` was asked: the hint depends on the direction of the change."""
    if got == torch.bool:
        return "a comparison or mask came back as booleans: convert it with .float() (or .to(x.dtype))"
    if not got.is_floating_point:
        return "an integer result: a count or an index, or integer division, where floats were asked (.float())"
    if want.is_floating_point and torch.finfo(got).bits > torch.finfo(want).bits:
        return (
            "keep the dtype of the inputs: a .double() or dtype=torch.float64, a float64 literal, numpy, or "
            "torch.tensor(...) without dtype can upcast"
        )
    return (
        "keep the dtype of the inputs: a .half()/.float() conversion, or a buffer created with the default dtype "
        "(torch.zeros without dtype=), lowers the precision"
    )


def _shape_hint(got: Sequence[int], shape: Sequence[int], dims: str | None) -> str:
    """What a wrong shape suggests: axes in the wrong order, a missing or extra axis, or one axis of the wrong size."""
    got, shape = tuple(got), tuple(shape)
    names = dims.split() if dims is not None else [f"axis {i}" for i in range(len(shape))]
    if sorted(got) == sorted(shape) and len(shape) > 1:
        return "the sizes are right but in the wrong order: check the axis order of your einsum/rearrange"
    extra, missing = Counter(got) - Counter(shape), Counter(shape) - Counter(got)
    if len(got) < len(shape) and not extra:
        lost = [f"{n}={s}" for n, s in zip(names, shape, strict=True) if missing[s] > 0]
        return (
            f"an axis is missing (one of {', '.join(lost)}): a sum, mean or index over an axis that should stay "
            "(or the wrong axis reduced), or a tensor created or drawn without it (its size left out of the shape)?"
        )
    if len(got) > len(shape) and not missing:
        sizes = ", ".join(str(s) for s in sorted(extra.elements()))
        known = "; ".join(k for k in (name_size(s, skip=got) for s in sorted(set(extra))) if k)
        known = f" ({known} in your inputs)" if known else ""
        return (
            f"an extra axis of size {sizes}: keepdim=True (or topk(1) / kthvalue with keepdim, which keep the axis) "
            "or an unsqueeze, or a reduction over that axis left out?"
            if set(extra) == {1}
            else f"an extra axis of size {sizes}{known}: an index that picks one entry of it left out (e.g. "
            "`W[latent]`), a reduction (sum or mean) over it left out, or a broadcast too many?"
        )
    if len(got) == len(shape):
        wrong = [(n, s, g) for n, s, g in zip(names, shape, got, strict=True) if s != g]
        if len(wrong) == 1:
            n, s, g = wrong[0]
            known, related = name_size(g, skip=got), size_relation(g, s, skip=got)
            if related:  # how the size follows from the right one says more than a coincidence with an input
                return f"axis {n} has size {g}, not {s}: {related}" + (
                    f"; or {known}, a size taken from it?" if known else ""
                )
            return f"axis {n} has size {g}, not {s}" + (
                f" ({known} in your inputs): a size taken from the wrong field or variable, or that axis kept where "
                f"`{n}` belongs (a reduction over another axis, or an index, slice or product on the wrong one)?"
                if known
                else ": check which axis your reduction, indexing, slicing or diagonal keeps there"
            )
    if math.prod(got) == math.prod(shape):
        return "the right number of elements in the wrong shape: did a reshape or squeeze change the axes?"
    return "compare your result's axes one by one with the expected ones: which is missing, extra or resized?"


def _named_shape(shape: Sequence[int], dims: str | None) -> str:
    if dims is None:
        return str(tuple(shape))
    names = dims.split()
    return "(" + ", ".join(f"{n}={s}" for n, s in zip(names, shape, strict=True)) + ")"


def _same_device(a: torch.device, b: torch.device) -> bool:
    return a.type == b.type and (a.index or 0) == (b.index or 0)


def expect_dict(out: Any, what: str, keys: Sequence[str]) -> dict:
    """A dict with (at least) the given keys, or a one-line failure naming what came back instead."""
    if not isinstance(out, dict):
        example = ", ".join(f"{k!r}: ..." for k in keys)
        fail(f"{what} should return a dict, got {type(out).__name__}", f"return {{{example}}}", code="not_dict")
    missing = [k for k in keys if k not in out]
    if missing:
        fail(f"the dict has no key(s) {missing}; it has {list(out)}", f"use exactly the keys {list(keys)}", code="keys")
    return out


def expect_scalar(x: Any, what: str, dtype: torch.dtype | None = None) -> Tensor:
    """A 0-dim floating tensor (a loss), finite, of `dtype` when given (the inputs' dtype: a float64 loss from
    float32 inputs means something upcast, and comparing it with the reference would fail on the dtype)."""
    x = expect_tensor(x, what, dtype=dtype)
    if x.ndim != 0:
        known = "; ".join(k for k in (name_size(s, skip=tuple(x.shape)) for s in dict.fromkeys(x.shape) if s > 1) if k)
        fail(
            f"{what} should be a scalar (0-dim) tensor, got shape {tuple(x.shape)}"
            + (f" ({known} in your inputs)" if known else ""),
            "reduce over every axis the exercise names (mean or sum) so a single number is returned"
            + (": that axis was left unreduced (its sum or mean missing)?" if known else "")
            if x.numel() != 1
            else "a shape of 1s around a single number: a [1]-shaped start (torch.zeros(1), torch.tensor([0.])), "
            "keepdim=True, an unsqueeze or [None]? Return a 0-dim tensor (.squeeze(), or sum without keepdim)",
            code="not_scalar",
        )
    return x


def expect_close(
    actual: Tensor,
    expected: Tensor,
    what: str,
    hint: str | None = None,
    code: str = "values",
    rtol: float = 1e-4,
    atol: float = 1e-5,
    dims: str | None = None,
) -> None:
    """Elementwise comparison with tolerances loose enough for any equivalent order of operations.

    float32 rounding differs between einsum, matmul and explicit sums by a few ulps times the
    reduction length; rtol=1e-4 leaves two orders of magnitude of room for the sizes checkers use.
    """
    expected = expected.to(actual.device, actual.dtype)
    bad = ~torch.isclose(actual, expected, rtol=rtol, atol=atol)
    if bad.any():
        idx = tuple(int(i) for i in bad.nonzero()[0])
        where = _named_index(idx, dims)
        n_bad, n = int(bad.sum()), bad.numel()
        fail(
            f"{what} differs from the expected values at {n_bad}/{n} positions; "
            f"first at {where}: got {actual[idx].item():.6g}, expected {expected[idx].item():.6g}",
            hint,
            code=code,
        )


def expect_matches(
    actual: Tensor,
    expected: Tensor,
    what: str,
    mistakes: Sequence[tuple[str, str | None, Tensor]] | Callable[[], Sequence[tuple[str, str | None, Tensor]]] = (),
    rtol: float = 1e-4,
    atol: float = 1e-5,
    dims: str | None = None,
    hint: str | None = None,
    code: str = "values",
    reference: Reference | None = None,
) -> None:
    """Like `expect_close`, but when the values are wrong, name the mistake.

    `mistakes` may be a function that builds the catalogue: it is called only when the values are wrong (or under
    `audit_catalogues()`), so a catalogue that costs model runs is not built for a right answer.

    The diagnosis, in order:

    1. the catalogue `mistakes`, (code, hint, value) triples: what a known buggy implementation (a mutant of
       the reference) returns on the same inputs. Every mutant that `actual` matches is named; when two
       different mistakes fit, both hints are given (never one that might be wrong);
    2. with `reference` (the solution's call that gave `expected`, see `tests.mutants`), the one-edit
       mutants of the solution whose output equals `actual`: the slip itself, for mistakes nobody listed;
       then an input the learner's call wrote into (the solution, re-run, no longer gives `expected`), and a
       tensor of the call itself (an argument, a model's parameter or buffer) handed back unchanged;
    3. generic relations between `actual` and `expected` that identify mistakes nobody listed: a constant
       factor (a mean where a sum was asked, or the reverse), the opposite sign, a constant offset, an axis
       reused from its first slice (instance 0 used for all), a transposition, errors confined to one slice;
    4. with `reference`, pairs of edits of the solution whose output equals `actual` (two slips at once);
    5. otherwise `hint` and `code` describe the failure.

    Under `audit_catalogues()` (the pytest suite) every call also checks that its catalogue can tell the
    mistakes apart: each mutant must differ from the reference and from every mutant with another code,
    and that `reference`, re-run, gives `expected`.
    """
    if not isinstance(actual, Tensor) or not isinstance(expected, Tensor):
        fail(f"{what} should be a tensor, got {type(actual).__name__}", code="not_tensor")
    expected = expected.to(actual.device, actual.dtype if actual.is_floating_point() else expected.dtype)
    right = actual.shape == expected.shape and torch.allclose(actual.to(expected.dtype), expected, rtol=rtol, atol=atol)
    if right and _AUDIT is None:
        return
    if callable(mistakes):
        mistakes = mistakes()
    mistakes = [(c, h, v.detach().to(actual.device, expected.dtype)) for c, h, v in mistakes if v is not None]
    if _AUDIT is not None:
        _audit(expected, mistakes, what, rtol, atol)
        if reference is not None and not _same_output(reference, expected, rtol, atol):
            _AUDIT.append(f"{what}: the reference call passed to expect_matches doesn't reproduce the expected values")
    if right:
        return
    matched = [
        (c, h)
        for c, h, v in mistakes
        if v.shape == actual.shape and torch.allclose(actual.to(v.dtype), v, rtol=rtol, atol=atol)
    ]
    if matched:
        codes = list(dict.fromkeys(c for c, _ in matched))
        hints = list(dict.fromkeys(h for c, h in matched if h))
        count = {2: "two", 3: "three"}.get(len(hints), str(len(hints)))
        found_hint = hints[0] if len(hints) == 1 else f"{count} mistakes fit what you returned: " + "; or ".join(hints)
        expect_close(actual, expected, what, found_hint, code=codes[0], rtol=rtol, atol=atol, dims=dims)
    if reference is not None and actual.shape == expected.shape:
        slip = one_change_diagnosis(reference, actual, expected, rtol, atol)
        if slip is not None:
            expect_close(actual, expected, what, slip, code="one_change", rtol=rtol, atol=atol, dims=dims)
    edited = None if reference is None else reference_no_longer_reproduces(reference, expected, rtol, atol)
    if edited is not None:
        expect_close(actual, expected, what, edited, code="in_place", rtol=rtol, atol=atol, dims=dims)
    returned_input = None if reference is None else returned_input_hint(reference, actual, expected, rtol, atol)
    if returned_input is not None:
        expect_close(actual, expected, what, returned_input, code="returned_input", rtol=rtol, atol=atol, dims=dims)
    generic = generic_diagnosis(actual, expected, dims, rtol, atol, _input_sizes(reference))
    if generic is not None:
        expect_close(actual, expected, what, generic[1], code=generic[0], rtol=rtol, atol=atol, dims=dims)
    pair = None if reference is None else two_change_diagnosis(reference, actual, expected, rtol, atol)
    if pair is not None:
        expect_close(actual, expected, what, pair, code="two_changes", rtol=rtol, atol=atol, dims=dims)
    # Nothing names the mistake: say how and where the values are wrong, before the formula. The code stays the
    # caller's, so a section's own diagnosis of that code (more specific) still runs after this one.
    observed = describe_disagreement(actual, expected, dims, rtol, atol)
    hint = f"{observed}. The formula: {hint}" if observed and hint else observed or hint
    expect_close(actual, expected, what, hint, code=code, rtol=rtol, atol=atol, dims=dims)


def _input_sizes(reference: Reference | None) -> list[int | tuple[str, int]]:
    return [] if reference is None else input_sizes(reference.args, reference.kwargs)


def _same_output(reference: Reference, expected: Tensor, rtol: float, atol: float) -> bool:
    out = reference.run()
    return (
        isinstance(out, Tensor)
        and out.shape == expected.shape
        and torch.allclose(out.detach().to(expected.device, expected.dtype), expected, rtol=rtol, atol=atol)
    )


def reversed_axes(a: Tensor, e: Tensor, close: Callable) -> tuple[int, ...] | None:
    """The fewest axes (at most 3, each longer than 1) whose flip turns `e` into `a`, or None."""
    sized = [i for i in range(a.ndim) if a.shape[i] > 1]
    for k in range(1, min(len(sized), 3) + 1):
        for subset in itertools.combinations(sized, k):
            if close(a, e.flip(subset)):
                return subset
    return None


def _reshaped_layout(a: Tensor, e: Tensor, names: list[str], close: Callable) -> str:
    """'... laid out as [inst batch d_in], then reshaped ...' when `a` is `e` computed with its axes in another order
    and then reshaped (not permuted) to the asked shape: reshape and view regroup memory, they don't move axes."""
    if a.ndim > 4:
        return ""
    for order in itertools.permutations(range(a.ndim)):
        if order != tuple(range(a.ndim)) and close(a, e.permute(order).reshape(e.shape)):
            laid = " ".join(names[i] for i in order)
            return (
                f"your values are the right ones computed as [{laid}] and then reshaped to [{' '.join(names)}]: "
                "reshape and view only regroup the numbers in memory; move axes with permute, transpose or "
                "einops.rearrange (or compute in the asked order)"
            )
    return ""


def _normalised_by(factor: float, e: Tensor) -> str:
    """'divided by their largest |value| (...)' when the factor is 1 over a statistic of the right values."""
    near = lambda x: x > 0 and abs(factor * x - 1) < 1e-3
    for label, stat in (
        ("their largest |value|", e.abs().max()),
        ("their L2 norm", e.norm()),
        ("their sum", e.sum()),
        ("the sum of their |values|", e.abs().sum()),
        ("their mean", e.mean()),
    ):
        if near(float(stat)):
            return f"they are the right values divided by {label} ({float(stat):.4g}): a normalisation not asked for?"
    return ""


def _shift_reason(offset: float, e: Tensor) -> str:
    """Why every value moved by the same `offset`: a statistic of the right values subtracted, else every cause."""
    stats = (
        ("their max", e.max()),
        ("their mean", e.mean()),
        ("their median", e.median()),
        ("their min", e.min()),
        ("their logsumexp (a log_softmax)", e.flatten().logsumexp(0)),
    )
    for label, stat in stats:
        if abs(offset + float(stat)) <= 1e-4 * max(1.0, abs(float(stat))):
            return f"{label} ({float(stat):.4g}) was subtracted from every value: a normalisation not asked for"
    small = abs(offset) <= 1e-2 * max(1.0, float(e.abs().max()))  # an eps-sized shift: most likely a stray eps
    eps = "a small constant (an eps) added to the result or a term where none belongs, or " if small else ""
    return (
        f"one number subtracted from or added to every value: {eps}a normalisation not asked for (subtracting a "
        "max, mean or logsumexp, a log_softmax, a difference of two softmaxes' logs), or a bias added twice or "
        "left out"
    )


def generic_diagnosis(
    actual: Tensor,
    expected: Tensor,
    dims: str | None = None,
    rtol: float = 1e-4,
    atol: float = 1e-5,
    sizes: Sequence[int] = (),
) -> tuple[str, str] | None:
    """(code, hint) for a wrong output related to the right one in a way that names the mistake, or None.

    `sizes`: the sizes of the inputs' axes, so that a factor equal to one of them, or to a ratio of two, is named
    (a division by the wrong count)."""
    if actual.shape != expected.shape or not actual.is_floating_point() or actual.numel() < 2:
        return None  # a single number: its checker's own diagnosis says more than a factor could
    a, e = actual.detach().double().cpu(), expected.detach().double().cpu()
    close = lambda x, y: bool(torch.allclose(x, y, rtol=rtol, atol=atol))
    names = dims.split() if dims and len(dims.split()) == a.ndim else [f"axis {i}" for i in range(a.ndim)]
    if close(a, -e):
        return "sign", "your values have the opposite sign of the expected ones: a subtraction the wrong way round?"
    e_sq = float((e * e).sum())
    if e_sq > 0:
        factor = float((a * e).sum()) / e_sq
        if abs(factor - 1) > 1e-3 and abs(factor) > 1e-6 and close(a, factor * e):
            named = {n: s for n, s in zip(names, a.shape, strict=True) if s > 1}
            reason = _normalised_by(factor, e) or factor_reason(factor, named, sizes)
            return "scale", f"your values are {factor:.4g} × the expected ones: {reason}"
    offset = float((a - e).mean())
    if abs(offset) > atol and close(a - offset, e):
        return "offset", f"your values are the expected ones shifted by {offset:.4g}: {_shift_reason(offset, e)}"
    constant = bool((a == a.flatten()[0]).all())  # one value everywhere: slice 0 matching it proves nothing
    for axis, name in enumerate(names):
        first = e.narrow(axis, 0, 1).expand_as(e)
        if a.shape[axis] > 1 and not constant and not close(first, e) and close(a, first):
            return "first_slice_for_all", (
                f"every `{name}` got the values of `{name}` 0: index with the `{name}` axis instead of 0"
            )
    if a.ndim >= 2:
        for i in range(a.ndim):
            for j in range(i + 1, a.ndim):
                if a.shape[i] == a.shape[j] and close(a, e.transpose(i, j)):
                    return "transposed", f"your values are the expected ones with `{names[i]}` and `{names[j]}` swapped"
        reshaped = _reshaped_layout(a, e, names, close)
        if reshaped:
            return "reshaped_not_permuted", reshaped
    flipped = reversed_axes(a, e, close)
    if flipped:
        listed = " and ".join(f"`{names[i]}` (axis {i})" for i in flipped)
        flip = f".flip({', '.join(map(str, flipped))})"
        return "axes_reversed", (
            f"your values are the expected ones with {listed} reversed (yours{flip} equals the expected "
            "output): a flip or [::-1] index on one axis where another was meant, or an order reversed that was right?"
        )
    bad = ~torch.isclose(a, e, rtol=rtol, atol=atol)
    for axis, name in enumerate(names):
        if a.shape[axis] > 1:
            wrong = bad.transpose(0, axis).reshape(a.shape[axis], -1).any(-1)
            if int(wrong.sum()) == 1:
                index = int(wrong.nonzero()[0])
                mine = a.narrow(axis, index, 1)
                others = (j for j in range(a.shape[axis]) if j != index and close(mine, e.narrow(axis, j, 1)))
                other = next(others, None)
                if other is not None:
                    return "one_slice", (
                        f"`{name}` {index} got the values `{name}` {other} should have, and every other `{name}` is "
                        f"right: an index of {other} used for it, an index clamped to {other} (such as max(i, 1)), "
                        "or a value left from an earlier loop iteration"
                    )
                found = region_of_disagreement(a, e, bad, atol)  # what sets that slice apart, when it shows
                return "one_slice", (
                    f"only `{name}` {index} is wrong on these inputs; every other `{name}` is right: "
                    + (found or "look for what sets that one apart, in your code or in its inputs")
                )
    return precision_reading(actual, expected, rtol, atol)  # wrong everywhere by about a bfloat16/float16 rounding


# --------------------------------------------------------------------------------------------
# Auditing catalogues (used by the pytest suite)
# --------------------------------------------------------------------------------------------
_AUDIT: list[str] | None = None


class audit_catalogues:
    """While active, every `expect_matches` call records the mutants its inputs can't tell apart.

    ``with audit_catalogues() as problems: checker(reference)`` then ``assert not problems``: a mutant equal
    to the reference (on the checker's inputs) would let that mistake pass, and two equal mutants with
    different codes would name the wrong one.
    """

    def __enter__(self) -> list[str]:
        global _AUDIT
        self._saved, _AUDIT = _AUDIT, []
        return _AUDIT

    def __exit__(self, *exc: object) -> None:
        global _AUDIT
        _AUDIT = self._saved


def _audit(expected: Tensor, mistakes: list[tuple[str, str | None, Tensor]], what: str, rtol: float, atol: float):
    def same(x: Tensor, y: Tensor) -> bool:
        return x.shape == y.shape and bool(torch.allclose(x, y, rtol=rtol, atol=atol, equal_nan=True))

    for i, (code, _, value) in enumerate(mistakes):
        if same(value, expected):
            _AUDIT.append(f"{what}: the mutant {code!r} equals the reference on the checker's inputs")
        for other_code, _, other in mistakes[i + 1 :]:
            if other_code != code and same(value, other):
                _AUDIT.append(f"{what}: the mutants {code!r} and {other_code!r} are equal on the checker's inputs")


def _named_index(idx: tuple[int, ...], dims: str | None) -> str:
    if dims is None or len(dims.split()) != len(idx):
        return str(list(idx))
    return ", ".join(f"{n} {i}" for n, i in zip(dims.split(), idx, strict=True))


# --------------------------------------------------------------------------------------------
# Statistics: tolerances that a correct implementation essentially never exceeds
# --------------------------------------------------------------------------------------------
# Every bound below comes from Bernstein's inequality: for the mean of n independent draws of a
# variable with range width R and variance var, P(|mean - mu| >= t) <= 2 exp(-n t^2 / (2 var + 2 R t / 3)).
# Solving for t at failure probability `delta` gives `bernstein_tolerance`. Checkers test K
# quantities at once with delta = FAILURE_PROBABILITY / K (a union bound), so a correct answer fails
# a whole checker with probability below FAILURE_PROBABILITY, whatever random numbers it draws.
FAILURE_PROBABILITY = 1e-7


def bernstein_tolerance(n: int, var: float, value_range: float, delta: float) -> float:
    """Smallest t with 2 exp(-n t^2 / (2 var + 2 R t / 3)) <= delta."""
    log_term = math.log(2 / delta)
    a = value_range * log_term / (3 * n)
    return a + math.sqrt(a * a + 2 * var * log_term / n)


def expect_frequency(
    observed: Tensor,
    expected: Tensor | float,
    n: int,
    what: str,
    dims: str | None = None,
    hint: Callable[[float, float], str | None] | str | None = None,
    code: str = "frequency",
    n_tests: int | None = None,
) -> None:
    """Each entry of ``observed`` is a frequency over ``n`` independent Bernoulli(expected) draws.

    ``hint`` may be a function of (observed, expected) at the worst entry, so the message can name
    the likely mistake (for example observed close to 1 - p).
    """
    observed = observed.detach().double().cpu()
    expected_t = torch.as_tensor(expected, dtype=torch.float64).expand_as(observed)
    k = n_tests or observed.numel()
    tol = torch.tensor(
        [bernstein_tolerance(n, p * (1 - p), 1.0, FAILURE_PROBABILITY / k) for p in expected_t.flatten().tolist()],
        dtype=torch.float64,
    ).reshape(observed.shape)
    excess = (observed - expected_t).abs() - tol
    if (excess > 0).any():
        idx = tuple(int(i) for i in divmod_index(int(excess.argmax()), observed.shape))
        obs, exp, t = observed[idx].item(), expected_t[idx].item(), tol[idx].item()
        hint_text = hint(obs, exp) if callable(hint) else hint
        fail(
            f"{what} at {_named_index(idx, dims)} is {obs:.2%}, expected {exp:.2%} ± {t:.2%}",
            hint_text,
            code=code,
        )


def divmod_index(flat: int, shape: torch.Size | Sequence[int]) -> tuple[int, ...]:
    idx = []
    for size in reversed(shape):
        flat, r = divmod(flat, size)
        idx.append(r)
    return tuple(reversed(idx))


def uniform_moments_tolerance(n: int, low: float, high: float, n_tests: int = 1) -> tuple[float, float]:
    """Tolerances on the sample mean and the sample mean of squares of n draws from U[low, high]."""
    width = high - low
    var_x = width**2 / 12
    # x^2 for x ~ U[low, high]: range max(low^2, high^2) - min over the interval, variance computed exactly
    m2 = (high**3 - low**3) / (3 * width)
    m4 = (high**5 - low**5) / (5 * width)
    lo_sq = 0.0 if low <= 0 <= high else min(low * low, high * high)
    range_sq = max(low * low, high * high) - lo_sq
    delta = FAILURE_PROBABILITY / (2 * n_tests)
    return (
        bernstein_tolerance(n, var_x, width, delta),
        bernstein_tolerance(n, m4 - m2 * m2, range_sq, delta),
    )
