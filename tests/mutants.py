"""Name a mistake nobody listed: find the one small edit of the solution that reproduces the learner's output.

Most wrong answers are the right code with one slip: a sum where a mean was meant, another axis, a term
left out, a strict comparison, steps in the other order, another variable or config field. When a
checker's catalogue of known mistakes has no match, `one_change_diagnosis` re-runs the solution's own
function with one such edit at a time (a *mutant*) on the checker's inputs, and reports the edits whose
output equals the learner's. The learner reads the slip itself: "`.sum(-1)` instead of `.mean(-1)` in
`loss = (h_hat - h).pow(2).mean(-1)`".

It only speaks when it can be right: the unmutated copy must reproduce the reference's output first (so
the inputs and the wiring are right), a constant or non-finite output is left to the other diagnoses, and
when more than a few different edits fit, it says nothing rather than guess. Mutants run on copies of the
inputs, within a time budget, and any error they raise is swallowed: a mutant that crashes is simply not
the learner's mistake. The edits themselves are in `tests.mutant_edits`.
"""

from __future__ import annotations

import ast
import contextlib
import copy
import functools
import gc
import inspect
import io
import itertools
import os
import sys
import textwrap
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from tests.mutant_edits import EDITS, Context

TIME_BUDGET_S = 1.0  # per diagnosis on a machine no busier than its cores; checkers stay well under 2 s
# The budget counts this process's CPU time, not the wall clock, and torch runs on one thread here. On a machine
# loaded past its cores even CPU time stretches (caches and memory bandwidth are shared), so the budget grows with the
# load, up to MAX_LOAD_FACTOR times: the search tries about the same edits, and what it names doesn't depend on it.
MAX_LOAD_FACTOR = 4.0
_clock = time.process_time
PER_MUTANT_S = 0.25
MAX_FITS = 3  # edits quoted at most
MAX_LINES = 2  # fitting edits on more lines than this: too ambiguous to name one
# Two slips at once: the edits that came closest to the learner's output are tried in pairs, in their own budget.
PAIR_BUDGET_S = 0.5
MAX_CANDIDATES = 400  # edits remembered from the one-change search
CLOSEST = 6  # edits paired with each other, by each of the two closeness measures
PARTNERED = 3  # of those, the closest ones are also paired with every other edit

_FILENAME = "<the solution with one change>"


# --------------------------------------------------------------------------------------------
# What the reference was called with
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Reference:
    """The solution function and the exact call whose (picked) output the checker compares with."""

    fn: Callable
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    pick: Callable[[Any], Any] | None = None
    # (pick, the learner's value) pairs the checker already accepted: an edit that changes them is not the slip
    agree: tuple[tuple[Callable[[Any], Any], Tensor], ...] = ()

    def run(self, fn: Callable | None = None) -> Any:
        """Call `fn` (default: the solution) on fresh copies of the arguments; return the picked output."""
        return self.pick(self.raw(fn)) if self.pick is not None else self.raw(fn)

    def raw(self, fn: Callable | None = None) -> Any:
        args, kwargs = _fresh(self.args), _fresh(self.kwargs)
        return (fn or self.fn)(*args, **kwargs)


def call(
    fn: Callable,
    *args: Any,
    pick: Callable[[Any], Any] | None = None,
    agree: tuple[tuple[Callable[[Any], Any], Tensor], ...] = (),
    **kwargs: Any,
) -> Reference:
    """``call(ref.loss, x, y)``: the Reference for ``ref.loss(x, y)``; `pick` selects what is compared and
    `agree` lists outputs the learner already got right, which a fitting edit must leave as they are."""
    return Reference(fn, args, kwargs, pick, agree)


def _fresh(obj: Any) -> Any:
    """A copy a mutant may edit in place without touching the checker's (or the learner's) objects."""
    if isinstance(obj, Tensor):
        copied = obj.detach().clone()
        return copied.requires_grad_() if obj.requires_grad and obj.is_floating_point() else copied
    if isinstance(obj, tuple):
        return tuple(_fresh(x) for x in obj)
    if isinstance(obj, list):
        return [_fresh(x) for x in obj]
    if isinstance(obj, dict):
        return {k: _fresh(v) for k, v in obj.items()}
    if isinstance(obj, (int, float, str, bool, type(None))) or (callable(obj) and not isinstance(obj, torch.nn.Module)):
        return obj
    if _shared(obj):
        return obj  # not copied for every mutant: `_restored` puts back whatever a mutant changed in it
    try:
        return copy.deepcopy(obj, {id(m): m for m in _shared_modules(obj)})
    except Exception:  # an object that can't be copied is shared; the solution doesn't edit its inputs
        return obj


def _shared(obj: Any) -> bool:
    """A module: shared by the mutants and restored after each (copying it hundreds of times costs more)."""
    return isinstance(obj, torch.nn.Module)


def _shared_modules(obj: Any) -> list[torch.nn.Module]:
    if isinstance(obj, (tuple, list)):
        return [m for x in obj for m in _shared_modules(x)]
    if isinstance(obj, dict):
        return [m for x in obj.values() for m in _shared_modules(x)]
    if _shared(obj):
        return [obj]
    fields = getattr(obj, "__dict__", None)  # a dataclass or namespace holding the model (one level down)
    if isinstance(fields, dict) and not isinstance(obj, (torch.nn.Module, type)):
        return [m for x in fields.values() if _shared(x) for m in [x]]
    return []


@contextlib.contextmanager
def _restored(modules: list[torch.nn.Module]) -> Iterator[Callable[[], None]]:
    """Yield `restore()`, which undoes what the last mutant did to the shared modules (in-place edits of their
    weights, replaced parameters or attributes, gradients, hooks left on a TransformerLens model); restore once
    more at the end. Restoring is cheaper than copying a module for every mutant."""
    saved = [{k: v.detach().clone() for k, v in m.state_dict().items()} for m in modules]
    parts = [sub for m in modules for sub in m.modules()]
    attributes = [{k: _snapshot(v) for k, v in vars(sub).items() if not k.startswith("_")} for sub in parts]

    def restore() -> None:
        for m, state in zip(modules, saved, strict=True):
            if hasattr(m, "reset_hooks") and any(
                h.fwd_hooks or h.bwd_hooks for h in getattr(m, "hook_dict", {}).values()
            ):
                m.reset_hooks(including_permanent=True)
            # compare values: an edit through `.data` doesn't show in the tensor's version counter
            current = m.state_dict()
            if current.keys() != state.keys() or not all(torch.equal(current[k], v) for k, v in state.items()):
                m.load_state_dict(state)
            for p in m.parameters():
                p.grad = None
        for sub, attrs in zip(parts, attributes, strict=True):
            for k in [k for k in vars(sub) if not k.startswith("_") and k not in attrs]:
                delattr(sub, k)
            for k, v in attrs.items():
                now = vars(sub).get(k)
                if isinstance(v, Tensor):
                    if not (isinstance(now, Tensor) and now.shape == v.shape and torch.equal(now, v)):
                        setattr(sub, k, v.clone())
                elif now is not v:
                    setattr(sub, k, v)

    try:
        yield restore
    finally:
        restore()


def _snapshot(value: Any) -> Any:
    return value.detach().clone() if isinstance(value, Tensor) else value


# --------------------------------------------------------------------------------------------
# The diagnosis
# --------------------------------------------------------------------------------------------
def one_change_diagnosis(
    reference: Reference, actual: Tensor, expected: Tensor, rtol: float = 1e-4, atol: float = 1e-5
) -> str | None:
    """A hint naming the one-edit mutants of the solution whose output equals `actual`, or None."""
    try:
        return _diagnose(reference, actual, expected, rtol, atol)
    except Exception:  # a diagnosis must never be the reason a check crashes
        return None


def _diagnose(reference: Reference, actual: Tensor, expected: Tensor, rtol: float, atol: float) -> str | None:
    a = actual.detach()
    if not a.is_floating_point() and a.dtype != torch.bool and not a.dtype.is_signed:
        return None
    if a.numel() == 0 or not torch.isfinite(a.double()).all():
        return None
    if a.numel() != 1 and a.shape != expected.shape:
        return None  # a wrong shape: the shape check names it, by the axis and the size
    if a.numel() == 1:
        # a single number is always the right one times some factor: a simple ratio (p/q, q <= 64) fits many
        # edits that change a count, so only other values are compared, and within float32 rounding only
        if expected.numel() != 1 or _simple_ratio(float(a.double()), float(expected.double())):
            return None
        rtol, atol = min(rtol, 1e-5), min(atol, 1e-8)
    elif bool((a == a.flatten()[0]).all()) or _scaled(a, expected, rtol, atol):
        # a constant output, or the right one times a factor, fits many edits that change one count or
        # size: the generic diagnosis names the factor and the axis it matches instead
        return None
    parsed = _parsed(reference.fn)
    if parsed is None:
        return None
    fdef, lines, region = parsed
    start = _clock()
    candidates: list[_Candidate] = []
    with _search_settings():
        fits = _fitting_edits(reference, fdef, lines, region, a, expected, start, rtol, atol, candidates)
    global _PENDING
    _PENDING = ((id(reference), id(actual)), candidates) if not fits and a.numel() > 1 else None
    if not fits or len({line for line, _ in fits}) > MAX_LINES:
        return None  # edits in several places fit: the slip could be in any of them
    quoted = [description for _, description in fits[:MAX_FITS]]
    more = f" (and {len(fits) - MAX_FITS} more equivalent edits there)" if len(fits) > MAX_FITS else ""
    if len(quoted) == 1:
        return f"your output is exactly the solution's with one change: {quoted[0]}"
    return "your output is exactly the solution's with any one of these changes: " + "; or ".join(quoted) + more


def _fitting_edits(
    reference: Reference,
    fdef: ast.FunctionDef,
    lines: list[str],
    region: tuple[int, int],
    actual: Tensor,
    expected: Tensor,
    start: float,
    rtol: float,
    atol: float,
    candidates: list[_Candidate],
) -> list[tuple[int, str]] | None:
    """(line, description) of the edits whose output equals `actual`, most common slips first (stopping past
    MAX_LINES lines), or None when the unedited copy doesn't reproduce `expected`. The edits that ran but don't
    fit go to `candidates`, with how close they came, for `two_change_diagnosis`."""
    deadline = start + TIME_BUDGET_S * _load_factor()
    with (
        _restored(_shared_modules((reference.args, reference.kwargs))) as restore,
        contextlib.closing(_mutants(fdef, lines, region)) as mutants,
    ):
        same = _output(reference, _compile(fdef, reference.fn), deadline)
        restore()
        if same is None or not _close(same[0], expected, rtol, atol):
            return None  # the copy doesn't reproduce the reference: random, or not the call compared
        fits: list[tuple[int, str]] = []
        for mutant in mutants:
            if _clock() > deadline:
                break
            try:
                fn = _compile(fdef, reference.fn)
            except Exception:
                continue
            out = _output(reference, fn, min(deadline, _clock() + PER_MUTANT_S))
            restore()
            if out is None:
                continue
            if not _close(out[0], actual, rtol, atol):
                if len(candidates) < MAX_CANDIDATES and (closeness := _closeness(out[0], actual, expected, rtol, atol)):
                    candidates.append(_Candidate(mutant, *closeness))
                continue
            if _agrees(out, reference, rtol, atol):
                description = mutant.describe()
                if all(_change(description) != _change(f) for _, f in fits):  # one change found by two edit kinds
                    fits.append((mutant.line, description))
                if len({n for n, _ in fits}) > MAX_LINES:
                    break
    return fits


@contextlib.contextmanager
def _search_settings() -> Iterator[None]:
    """One torch thread (hundreds of tiny runs: thread start-up would cost more than the work), no garbage
    collection (a full one over a large heap, a loaded language model, can take longer than one mutant's budget:
    it would time out the very edit that fits, and the hint would depend on when the collector ran), and quiet."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    collecting = gc.isenabled()
    gc.disable()
    try:
        with _quiet():
            yield
    finally:
        torch.set_num_threads(threads)
        if collecting:
            gc.enable()


# --------------------------------------------------------------------------------------------
# Two slips at once
# --------------------------------------------------------------------------------------------
@dataclass
class _Candidate:
    mutant: _Mutant
    plain: float  # distance from its output to the learner's, relative to the reference's distance
    scaled: float  # the same after the best rescaling of its output (a slip that also changed a count or a sum)


# the last one-change search that found no fit: (the reference and the learner's output it was for, its edits)
_PENDING: tuple[tuple[int, int], list[_Candidate]] | None = None


def _closeness(out: Any, actual: Tensor, expected: Tensor, rtol: float, atol: float) -> tuple[float, float] | None:
    if not isinstance(out, Tensor) or out.shape != actual.shape or _close(out, expected, rtol, atol):
        return None
    o, a, e = (t.detach().to(actual.device).double() for t in (out, actual, expected))
    if not torch.isfinite(o).all():
        return None
    o_sq = float((o * o).sum())
    c = float((o * a).sum()) / o_sq if o_sq > 0 else 0.0
    plain = float((o - a).norm()) / max(float((e - a).norm()), 1e-30)
    return plain, float((c * o - a).norm()) / max(float(a.norm()), 1e-30)


def two_change_diagnosis(
    reference: Reference, actual: Tensor, expected: Tensor, rtol: float = 1e-4, atol: float = 1e-5
) -> str | None:
    """After `one_change_diagnosis` found no single edit for this `actual`: a hint naming the pair of edits, in two
    places, whose output equals it (two slips at once), or None."""
    global _PENDING
    pending, _PENDING = _PENDING, None
    if pending is None or pending[0] != (id(reference), id(actual)) or not pending[1]:
        return None
    try:
        parsed = _parsed(reference.fn)
        if parsed is None:
            return None
        with _search_settings():
            fits = _fitting_pairs(reference, parsed[0], pending[1], actual.detach(), rtol, atol)
    except Exception:  # a diagnosis must never be the reason a check crashes
        return None
    if not fits or len({lines for lines, _ in fits}) > 1:
        return None  # pairs of edits in different places fit: too ambiguous to name one
    quoted = [description for _, description in fits[:2]]
    return "your output is exactly the solution's with two changes: " + " — or — ".join(quoted)


def _fitting_pairs(
    reference: Reference,
    fdef: ast.FunctionDef,
    candidates: list[_Candidate],
    actual: Tensor,
    rtol: float,
    atol: float,
) -> list[tuple[tuple[int, int], str]]:
    """((line, line), description) of the pairs of edits whose output equals `actual`: first the closest edits
    with each other, then the very closest with every other edit, within PAIR_BUDGET_S."""
    deadline = _clock() + PAIR_BUDGET_S * _load_factor()
    by_plain = sorted(candidates, key=lambda c: c.plain)[:CLOSEST]
    by_scaled = sorted(candidates, key=lambda c: c.scaled)[:CLOSEST]
    closest = list({id(c): c for c in [*by_plain, *by_scaled]}.values())
    partnered = list({id(c): c for pair in zip(by_plain, by_scaled, strict=False) for c in pair}.values())
    pairs = itertools.chain(
        itertools.combinations(closest, 2), ((c, d) for c in partnered[:PARTNERED] for d in candidates)
    )
    fits: list[tuple[tuple[int, int], str]] = []
    tried: set[frozenset[int]] = set()
    with _restored(_shared_modules((reference.args, reference.kwargs))) as restore:
        for first, second in pairs:
            a, b = first.mutant, second.mutant
            key = frozenset((id(a), id(b)))
            if _clock() > deadline or len(fits) > 2:
                break
            if key in tried or a.node in b.path or b.node in a.path:
                continue  # the same pair, or one edit inside the other
            tried.add(key)
            described = _run_pair(reference, fdef, a, b, actual, deadline, restore, rtol, atol)
            if described is not None and all(_change(described) != _change(f) for _, f in fits):
                fits.append((tuple(sorted((a.line, b.line))), described))
    return fits


def _run_pair(
    reference: Reference,
    fdef: ast.FunctionDef,
    a: _Mutant,
    b: _Mutant,
    actual: Tensor,
    deadline: float,
    restore: Callable[[], None],
    rtol: float,
    atol: float,
) -> str | None:
    """Both edits in place: their description when the output equals `actual` (and the agreed outputs), else None."""
    first, second = sorted((a, b), key=lambda m: m.line)
    undo_first = first.reapply()
    if undo_first is None:
        return None
    try:
        undo_second = second.reapply()
        if undo_second is None:
            return None
        try:
            out = _output(reference, _compile(fdef, reference.fn), min(deadline, _clock() + PER_MUTANT_S))
            restore()
            if out is None or not _close(out[0], actual, rtol, atol) or not _agrees(out, reference, rtol, atol):
                return None
            return f"{first.describe()}; and {second.describe()}"
        finally:
            undo_second()
    finally:
        undo_first()


def _agrees(out: tuple[Any, list[Any]], reference: Reference, rtol: float, atol: float) -> bool:
    """Whether an edited run left the outputs the checker already accepted (`reference.agree`) as they were."""
    return all(_close(got, want, rtol, atol) for got, (_, want) in zip(out[1], reference.agree, strict=True))


def _load_factor() -> float:
    """How many times busier than its cores the machine has been over the last minute, from 1 to MAX_LOAD_FACTOR
    (1 where the load average isn't available)."""
    try:
        return min(max(os.getloadavg()[0] / (os.cpu_count() or 1), 1.0), MAX_LOAD_FACTOR)
    except (AttributeError, OSError):  # Windows has no load average
        return 1.0


def _change(description: str) -> str:
    return description.split(": ", 1)[-1]


def _simple_ratio(a: float, e: float) -> bool:
    """Whether a / e is 0, non-finite, or within 1e-4 of ±p/q for integers p, q <= 64."""
    if e == 0 or a == 0:
        return True
    r = abs(a / e)
    return any(abs(r * q - round(r * q)) < 1e-4 * r * q and round(r * q) <= 64 for q in range(1, 65))


def _scaled(a: Tensor, expected: Tensor, rtol: float, atol: float) -> bool:
    a, e = a.double(), expected.detach().to(a.device).double()
    e_sq = float((e * e).sum())
    return e_sq > 0 and bool(torch.allclose(a, float((a * e).sum()) / e_sq * e, rtol=rtol, atol=atol))


def _close(x: Any, y: Tensor, rtol: float, atol: float) -> bool:
    if not isinstance(x, Tensor) or x.shape != y.shape:
        return False
    try:
        return bool(torch.allclose(x.detach().to(y.device).double(), y.detach().double(), rtol=rtol, atol=atol))
    except Exception:
        return False


class _OutOfTime(Exception):
    pass


def _output(reference: Reference, fn: Callable, deadline: float) -> tuple[Any, list[Any]] | None:
    """The picked output of `fn` on fresh inputs and the outputs it must agree on, or None when it raises or
    runs past `deadline`.

    A trace function on the mutant's own frames stops a mutant that loops for too long (a deleted
    `step += 1`, a loop bound swapped for a large size); other frames run untraced.
    """

    def local(frame: Any, event: str, arg: Any) -> Any:
        if _clock() > deadline:
            raise _OutOfTime
        return local

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        return local if frame.f_code.co_filename == _FILENAME else None

    previous, rng = sys.gettrace(), torch.get_rng_state()
    sys.settrace(tracer)
    try:
        # the CPU generator only: torch.manual_seed would also seed CUDA, which costs milliseconds per call
        torch.random.default_generator.manual_seed(0)
        if not reference.agree:
            return reference.run(fn), []
        raw = reference.raw(fn)
        main = reference.pick(raw) if reference.pick is not None else raw
        return main, [pick(raw) for pick, _ in reference.agree]
    except Exception:
        return None
    finally:
        sys.settrace(previous)
        torch.set_rng_state(rng)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    with (
        warnings.catch_warnings(),
        contextlib.redirect_stdout(io.StringIO()),
        contextlib.redirect_stderr(io.StringIO()),
    ):
        warnings.simplefilter("ignore")
        yield


@functools.cache
def _parsed(fn: Callable) -> tuple[ast.FunctionDef, list[str], tuple[int, int]] | None:
    """The function's AST (decorators and annotations removed), its lines and the lines mutants may edit."""
    try:
        fn = inspect.unwrap(fn)
        source = textwrap.dedent(inspect.getsource(fn))
        fdef = ast.parse(source).body[0]
    except Exception:
        return None
    if not isinstance(fdef, ast.FunctionDef):
        return None
    fdef.decorator_list, fdef.returns = [], None
    for arg in [*fdef.args.posonlyargs, *fdef.args.args, *fdef.args.kwonlyargs, fdef.args.vararg, fdef.args.kwarg]:
        if arg is not None:
            arg.annotation = None
    lines = source.splitlines()
    begin = next((i + 1 for i, line in enumerate(lines) if "BEGIN SOLUTION" in line), None)
    end = next((i + 1 for i, line in enumerate(lines) if "END SOLUTION" in line), None)
    if begin is not None and end is not None:
        return fdef, lines, (begin, end)
    return fdef, lines, (fdef.body[0].lineno, fdef.end_lineno or len(lines))


def _compile(fdef: ast.FunctionDef, original: Callable) -> Callable:
    module = ast.Module(body=[fdef], type_ignores=[])  # new nodes got their locations in _mutants
    namespace: dict[str, Any] = {}
    exec(compile(module, _FILENAME, "exec"), inspect.unwrap(original).__globals__, namespace)
    return namespace[fdef.name]


# --------------------------------------------------------------------------------------------
# The edits
# --------------------------------------------------------------------------------------------
@dataclass
class _Mutant:
    """One edit of the solution, yielded while it is in place in the shared tree."""

    line: int
    describe: Callable[[], str]  # called only while the edit is in place (unparsing every edit is slow)
    node: int  # the index of the edited node in the walk of the tree
    path: frozenset[int]  # that node and every node above it: two edits combine only when neither holds the other
    reapply: Callable[[], Callable[[], None] | None]  # put the edit back in place; returns what undoes it


def _mutants(fdef: ast.FunctionDef, lines: list[str], region: tuple[int, int]) -> Iterator[_Mutant]:
    """Every one-edit copy of `fdef` inside `region` (edited in place, undone when the next is asked for), most
    common slips first."""
    nodes = list(ast.walk(fdef))
    inside = [
        i
        for i, node in enumerate(nodes)
        if hasattr(node, "lineno") and region[0] <= node.lineno <= region[1] and node is not fdef
    ]
    context = Context.of(fdef)
    parent = {id(child): k for k, node in enumerate(nodes) for child in ast.iter_child_nodes(node)}
    sources = {i: " ".join(ast.unparse(nodes[i]).split()) for i in inside}  # full text: a truncated one hides edits
    seen: set[tuple[int, str]] = set()
    for edits in EDITS:
        for i in inside:
            for new, label in edits(nodes[i], context):
                new_src = "(nothing)" if new is None else " ".join(ast.unparse(new).split())
                if (i, new_src) in seen or new_src == sources[i]:
                    continue
                seen.add((i, new_src))
                if new is not None:
                    ast.fix_missing_locations(ast.copy_location(new, nodes[i]))
                was_degenerate = _degenerate(nodes[parent[id(nodes[i])]])
                shown = _shown(nodes, parent, i)
                before = ast.unparse(nodes[shown]) if shown != i else None
                undo = _replace(nodes[parent[id(nodes[i])]], nodes[i], new)
                if undo is None:
                    continue
                try:
                    if new is None or was_degenerate or not _degenerate(nodes[parent[id(nodes[i])]]):

                        def describe(
                            i: int = i, new: Any = new, label: str = label, shown: int = shown, before: Any = before
                        ) -> str:
                            after = ast.unparse(nodes[shown]) if shown != i else None
                            return _describe(nodes, parent, lines, i, new, label, before, after)

                        def reapply(i: int = i, new: Any = new) -> Callable[[], None] | None:
                            return _replace(nodes[parent[id(nodes[i])]], nodes[i], new)

                        yield _Mutant(nodes[i].lineno, describe, i, _path(parent, nodes, i), reapply)
                finally:
                    undo()  # the caller compiled the edited tree (and described a fitting one) before the next


def _path(parent: dict[int, int], nodes: list[ast.AST], i: int) -> frozenset[int]:
    path = {i}
    while id(nodes[i]) in parent:
        i = parent[id(nodes[i])]
        path.add(i)
    return frozenset(path)


def _shown(nodes: list[ast.AST], parent: dict[int, int], i: int) -> int:
    """The node to quote for an edit at nodes[i]: enough of the expression around it to say where it is."""
    shown = i
    while len(ast.unparse(nodes[shown])) < 25 and isinstance(nodes[parent[id(nodes[shown])]], ast.expr):
        shown = parent[id(nodes[shown])]
    return shown if isinstance(nodes[i], ast.expr) else i


def _describe(
    nodes: list[ast.AST],
    parent: dict[int, int],
    lines: list[str],
    i: int,
    new: ast.AST | None,
    label: str,
    before: str | None,
    after: str | None,
) -> str:
    line = _short(lines[nodes[i].lineno - 1].strip())
    if new is None:
        return f"{label}: `{line}` left out"
    label = _accumulator(nodes, parent, i, new) or label
    if isinstance(nodes[i], ast.stmt):
        new_line, old_line = (ast.unparse(node).splitlines()[0] for node in (new, nodes[i]))
        if _short(new_line) == _short(old_line):  # the edit is past the cut: quote both around it
            new_line, old_line = _around_difference(new_line, old_line)
            return f"{label}: `{new_line}` instead of `{old_line}`"
        return f"{label}: `{_short(new_line)}` instead of `{line}`"
    old_src, new_src = (before, after) if before is not None else (ast.unparse(nodes[i]), ast.unparse(new))
    new_src, old_src = _around_difference(new_src, old_src)
    return f"{label}: `{new_src}` instead of `{old_src}` in `{line}`"


def _around_difference(a: str, b: str, width: int = 90) -> tuple[str, str]:
    """Both texts cut to `width`, starting shortly before where they first differ: an edit at the end of a long
    expression must show in the quote, not fall past its cut."""
    a, b = " ".join(a.split()), " ".join(b.split())
    first = next((k for k, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    start = max(0, first - 30) if first > width - 20 else 0
    cut = lambda t: ("…" if start else "") + _short(t[start:], width)
    return cut(a), cut(b)


def _degenerate(node: ast.AST) -> bool:
    if isinstance(node, ast.Compare) and len(node.comparators) == 1:
        return ast.dump(node.left) == ast.dump(node.comparators[0])
    return isinstance(node, ast.BinOp) and ast.dump(node.left) == ast.dump(node.right)


def _accumulator(nodes: list[ast.AST], parent: dict[int, int], i: int, new: ast.AST | None) -> str | None:
    """`total = total + x` with `total +` dropped reads better as "not accumulated"."""
    node = nodes[i]
    if not (isinstance(node, ast.BinOp) and isinstance(node.left, ast.Name) and new is not None):
        return None
    k = i
    while not isinstance(nodes[k], ast.stmt):
        k = parent[id(nodes[k])]
    stmt = nodes[k]
    targets = [t.id for t in getattr(stmt, "targets", []) if isinstance(t, ast.Name)]
    if node.left.id in targets and ast.dump(new) == ast.dump(node.right):
        return f"`{node.left.id}` overwritten instead of accumulated (only the last iteration counts)"
    return None


def _short(text: str, width: int = 90) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _replace(parent: ast.AST, target: ast.AST, new: ast.AST | None) -> Callable[[], None] | None:
    """Put `new` (None: delete the statement) where `target` is in `parent`; return what undoes it."""
    for name, value in ast.iter_fields(parent):
        if value is target and new is not None:
            setattr(parent, name, new)
            return lambda: setattr(parent, name, target)
        if isinstance(value, list) and any(item is target for item in value):
            saved = list(value)
            j = next(j for j, item in enumerate(value) if item is target)
            if new is not None:
                value[j] = new
            else:
                del value[j]
                if not value and name in ("body", "orelse", "finalbody"):
                    value.append(ast.Pass())

            def undo(value: list = value, saved: list = saved) -> None:
                value[:] = saved

            return undo
    return None
