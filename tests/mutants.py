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
the learner's mistake.
"""

from __future__ import annotations

import ast
import contextlib
import copy
import functools
import inspect
import io
import sys
import textwrap
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

TIME_BUDGET_S = 1.0  # per diagnosis; checkers stay well under 2 s even on a slow laptop
PER_MUTANT_S = 0.25
LARGE_MODULE = 100_000  # parameters: larger modules are shared by the mutants, and restored after each
MAX_FITS = 3  # more different edits than this fit: too ambiguous to name one

_FILENAME = "<the solution with one change>"
_MODULE_NAMES = {"torch", "F", "nn", "np", "einops", "math", "functional", "linalg", "self", "cls", "super"}
_REDUCTION_SWAPS = {
    "sum": ("mean",),
    "mean": ("sum",),
    "max": ("min",),
    "min": ("max",),
    "amax": ("amin",),
    "amin": ("amax",),
    "argmax": ("argmin",),
    "argmin": ("argmax",),
    "softmax": ("log_softmax",),
    "log_softmax": ("softmax",),
    "norm": ("sum",),
}
_DIM_FUNCS = {
    "sum", "mean", "max", "min", "amax", "amin", "norm", "softmax", "log_softmax", "argmax", "argmin", "topk",
    "cumsum", "std", "var", "logsumexp", "all", "any", "count_nonzero", "prod", "normalize", "cat", "stack",
    "unsqueeze", "squeeze", "flip", "sort", "argsort", "vector_norm", "diff", "nansum", "median", "split", "chunk",
    "roll", "narrow", "select", "gather", "index_select", "repeat_interleave", "transpose", "flatten", "cumprod",
    "nanmean", "quantile", "kthvalue", "unbind", "swapaxes", "movedim",
}  # fmt: skip
_UNARY_FUNCS = {
    "relu", "abs", "sqrt", "exp", "log", "sigmoid", "tanh", "gelu", "softmax", "log_softmax", "normalize",
    "clamp", "clip", "square", "detach", "log1p", "clamp_min", "clamp_max",
}  # fmt: skip
_COMPARE_SWAPS = {
    ast.Gt: (ast.GtE, ast.Lt),
    ast.GtE: (ast.Gt, ast.LtE),
    ast.Lt: (ast.LtE, ast.Gt),
    ast.LtE: (ast.Lt, ast.GtE),
    ast.Eq: (ast.NotEq,),
    ast.NotEq: (ast.Eq,),
}


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
    if _large(obj):
        return obj  # not copied for every mutant: `_restored` puts back whatever a mutant changed in it
    try:
        return copy.deepcopy(obj, {id(m): m for m in _large_modules(obj)})
    except Exception:  # an object that can't be copied is shared; the solution doesn't edit its inputs
        return obj


def _large(obj: Any) -> bool:
    """A language model or another module too big to copy hundreds of times within the time budget."""
    return isinstance(obj, torch.nn.Module) and sum(p.numel() for p in obj.parameters()) > LARGE_MODULE


def _large_modules(obj: Any) -> list[torch.nn.Module]:
    if isinstance(obj, (tuple, list)):
        return [m for x in obj for m in _large_modules(x)]
    if isinstance(obj, dict):
        return [m for x in obj.values() for m in _large_modules(x)]
    if _large(obj):
        return [obj]
    fields = getattr(obj, "__dict__", None)  # a dataclass or namespace holding the model (one level down)
    if isinstance(fields, dict) and not isinstance(obj, (torch.nn.Module, type)):
        return [m for x in fields.values() if _large(x) for m in [x]]
    return []


@contextlib.contextmanager
def _restored(modules: list[torch.nn.Module]) -> Iterator[Callable[[], None]]:
    """Yield `restore()`, which undoes what the last mutant did to the shared large modules (in-place edits of
    their weights, replaced parameters, hooks left on a TransformerLens model); restore once more at the end."""
    saved = [{k: v.detach().clone() for k, v in m.state_dict().items()} for m in modules]

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

    try:
        yield restore
    finally:
        restore()


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
    if a.numel() < 2 or bool((a == a.flatten()[0]).all()) or _scaled(a, expected, rtol, atol):
        # a constant output, or the right one times a factor (a scalar always is), fits many edits that
        # change one count or size: the generic diagnosis names the factor and the axis it matches instead
        return None
    parsed = _parsed(reference.fn)
    if parsed is None:
        return None
    fdef, lines, region = parsed
    start = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # hundreds of tiny runs: thread start-up would cost more than the work
    try:
        with _quiet():
            fits = _fitting_edits(reference, fdef, lines, region, a, expected, start, rtol, atol)
    finally:
        torch.set_num_threads(threads)
    if not fits or len(fits) > MAX_FITS:
        return None
    if len(fits) == 1:
        return f"your output is exactly the solution's with one change: {fits[0]}"
    return "your output is exactly the solution's with any one of these changes: " + "; or ".join(fits)


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
) -> list[str] | None:
    """The descriptions of the edits whose output equals `actual` (stopping past MAX_FITS), or None."""
    with _restored(_large_modules((reference.args, reference.kwargs))) as restore:
        return _fits(reference, fdef, lines, region, actual, expected, start + TIME_BUDGET_S, rtol, atol, restore)


def _fits(
    reference: Reference,
    fdef: ast.FunctionDef,
    lines: list[str],
    region: tuple[int, int],
    actual: Tensor,
    expected: Tensor,
    deadline: float,
    rtol: float,
    atol: float,
    restore: Callable[[], None],
) -> list[str] | None:
    same = _output(reference, _compile(fdef, reference.fn), deadline)
    restore()
    if same is None or not _close(same[0], expected, rtol, atol):
        return None  # the copy doesn't reproduce the reference: random, or not the call compared
    fits: list[str] = []
    with contextlib.closing(_mutants(fdef, lines, region)) as mutants:
        for mutant, description in mutants:
            if time.perf_counter() > deadline:
                break
            try:
                fn = _compile(mutant, reference.fn)
            except Exception:
                continue
            out = _output(reference, fn, min(deadline, time.perf_counter() + PER_MUTANT_S))
            restore()
            if out is None or not _close(out[0], actual, rtol, atol):
                continue
            if all(_close(got, want, rtol, atol) for got, (_, want) in zip(out[1], reference.agree, strict=True)):
                if all(_change(description) != _change(f) for f in fits):  # one change found by two edit kinds
                    fits.append(description)
                if len(fits) > MAX_FITS:
                    break
    return fits


def _change(description: str) -> str:
    return description.split(": ", 1)[-1]


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
        if time.perf_counter() > deadline:
            raise _OutOfTime
        return local

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        return local if frame.f_code.co_filename == _FILENAME else None

    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            if not reference.agree:
                return reference.run(fn), []
            raw = reference.raw(fn)
            main = reference.pick(raw) if reference.pick is not None else raw
            return main, [pick(raw) for pick, _ in reference.agree]
    except Exception:
        return None
    finally:
        sys.settrace(previous)


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
def _mutants(fdef: ast.FunctionDef, lines: list[str], region: tuple[int, int]) -> Iterator[tuple[ast.FunctionDef, str]]:
    """Every one-edit copy of `fdef` inside `region`, most common slips first, each with its description."""
    nodes = list(ast.walk(fdef))
    inside = [
        i
        for i, node in enumerate(nodes)
        if hasattr(node, "lineno") and region[0] <= node.lineno <= region[1] and node is not fdef
    ]
    context = _Context.of(fdef)
    parent = {id(child): k for k, node in enumerate(nodes) for child in ast.iter_child_nodes(node)}
    seen: set[tuple[int, str]] = set()
    for edits in _EDITS:
        for i in inside:
            for new, label in edits(nodes[i], context):
                new_src = "(nothing)" if new is None else _short(ast.unparse(new))
                if (i, new_src) in seen or new_src == _short(ast.unparse(nodes[i])):
                    continue
                seen.add((i, new_src))
                if new is not None:
                    ast.fix_missing_locations(ast.copy_location(new, nodes[i]))
                shown = _shown(nodes, parent, i)
                before = ast.unparse(nodes[shown]) if shown != i else None
                was_degenerate = _degenerate(nodes[parent[id(nodes[i])]])
                undo = _replace(nodes[parent[id(nodes[i])]], nodes[i], new)
                if undo is None:
                    continue
                try:
                    if new is None or was_degenerate or not _degenerate(nodes[parent[id(nodes[i])]]):
                        after = ast.unparse(nodes[shown]) if shown != i else None
                        yield fdef, _describe(nodes, parent, lines, i, new, label, before, after)
                finally:
                    undo()  # the caller compiled the edited tree before asking for the next one


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
        return f"{label}: `{_short(ast.unparse(new).splitlines()[0])}` instead of `{line}`"
    old_src, new_src = (before, after) if before is not None else (ast.unparse(nodes[i]), ast.unparse(new))
    return f"{label}: `{_short(new_src)}` instead of `{_short(old_src)}` in `{line}`"


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


@dataclass
class _Context:
    local_names: list[str]
    attributes: dict[str, list[str]]  # base name -> attributes read from it

    @staticmethod
    def of(fdef: ast.FunctionDef) -> _Context:
        names = [a.arg for a in [*fdef.args.posonlyargs, *fdef.args.args, *fdef.args.kwonlyargs]]
        attributes: dict[str, list[str]] = {}
        # a comprehension's own variable is a loop index, not a value one could mix up with the others
        bound = {n.id for c in ast.walk(fdef) if isinstance(c, ast.comprehension) for n in ast.walk(c.target)}
        for node in ast.walk(fdef):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store) and node.id not in names:
                names.append(node.id)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                seen = attributes.setdefault(node.value.id, [])
                if node.attr not in seen:
                    seen.append(node.attr)
        return _Context([n for n in names if n not in ("self", "cls") and n not in bound], attributes)


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


def _copy_with(node: ast.AST, **changes: Any) -> ast.AST:
    new = copy.deepcopy(node)
    for name, value in changes.items():
        setattr(new, name, value)
    return new


def _int_value(node: ast.AST) -> int | None:
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant):
        value = node.operand.value
        return -value if type(value) is int else None
    return None


def _int_node(value: int) -> ast.AST:
    return ast.Constant(value) if value >= 0 else ast.UnaryOp(ast.USub(), ast.Constant(-value))


def _call_name(node: ast.Call) -> str | None:
    func = node.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None


def _is_method_of_value(node: ast.Call) -> bool:
    """`x.sum()` on a value, not `torch.sum(x)` / `self.encode(x)` on a module-like name."""
    func = node.func
    return isinstance(func, ast.Attribute) and not (isinstance(func.value, ast.Name) and func.value.id in _MODULE_NAMES)


Edit = Callable[[ast.AST, _Context], Iterator[tuple[ast.AST | None, str]]]


def _reductions(node: ast.AST, _: _Context) -> Iterator[tuple[ast.AST | None, str]]:
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
        return
    for other in _REDUCTION_SWAPS.get(node.func.attr, ()):
        yield _copy_with(node, func=_copy_with(node.func, attr=other)), f"`{other}` where `{node.func.attr}` belongs"


def _dims(node: ast.AST, _: _Context) -> Iterator[tuple[ast.AST | None, str]]:
    if not isinstance(node, ast.Call) or _call_name(node) not in _DIM_FUNCS:
        return
    for k, kw in enumerate(node.keywords):
        if kw.arg in ("dim", "axis") and _int_value(kw.value) is not None:
            for value in (0, 1, 2, -1, -2):
                if value != _int_value(kw.value):
                    keywords = [*node.keywords[:k], ast.keyword(kw.arg, _int_node(value)), *node.keywords[k + 1 :]]
                    yield _copy_with(node, keywords=keywords), "another axis"
            yield _copy_with(node, keywords=[*node.keywords[:k], *node.keywords[k + 1 :]]), "no axis given"
        if kw.arg in ("dim", "axis") and isinstance(kw.value, ast.Tuple) and len(kw.value.elts) > 1:
            for j in range(len(kw.value.elts)):
                fewer = ast.Tuple([copy.deepcopy(e) for k2, e in enumerate(kw.value.elts) if k2 != j], ast.Load())
                keywords = [*node.keywords[:k], ast.keyword(kw.arg, fewer), *node.keywords[k + 1 :]]
                yield _copy_with(node, keywords=keywords), "one axis fewer"
        if kw.arg == "keepdim":
            yield _copy_with(node, keywords=[*node.keywords[:k], *node.keywords[k + 1 :]]), "without keepdim"
    for k, arg in enumerate(node.args):
        if isinstance(arg, ast.Tuple) and len(arg.elts) > 1 and all(_int_value(e) is not None for e in arg.elts):
            for j in range(len(arg.elts)):
                fewer = ast.Tuple([copy.deepcopy(e) for k2, e in enumerate(arg.elts) if k2 != j], ast.Load())
                yield _copy_with(node, args=[*node.args[:k], fewer, *node.args[k + 1 :]]), "one axis fewer"
        current = _int_value(arg)
        if current is not None and -3 <= current <= 3:
            for value in (0, 1, 2, -1, -2):
                if value != current:
                    yield _copy_with(node, args=[*node.args[:k], _int_node(value), *node.args[k + 1 :]]), "another axis"
            if _is_method_of_value(node) and k == len(node.args) - 1:
                yield _copy_with(node, args=node.args[:k]), "no axis given"


def _terms(node: ast.AST, _: _Context) -> Iterator[tuple[ast.AST | None, str]]:
    if isinstance(node, ast.BinOp):
        left, right, op = node.left, node.right, node.op
        if isinstance(op, ast.Add):
            yield copy.deepcopy(left), "a term left out"
            yield copy.deepcopy(right), "a term left out"
            yield _copy_with(node, op=ast.Sub()), "a subtraction where the solution adds"
        elif isinstance(op, ast.Sub):
            yield copy.deepcopy(left), "a term left out"
            yield (
                _copy_with(node, left=copy.deepcopy(right), right=copy.deepcopy(left)),
                "the subtraction the other way round",
            )
            yield _copy_with(node, op=ast.Add()), "an addition where the solution subtracts"
        elif isinstance(op, ast.Mult):
            yield copy.deepcopy(left), "a factor left out"
            yield copy.deepcopy(right), "a factor left out"
        elif isinstance(op, ast.Div):
            yield copy.deepcopy(left), "a division left out"
            yield _copy_with(node, op=ast.Mult()), "a multiplication where the solution divides"
        elif isinstance(op, ast.Pow):
            yield copy.deepcopy(left), "a power left out"
        elif isinstance(op, ast.MatMult):
            yield (
                _copy_with(node, left=copy.deepcopy(right), right=copy.deepcopy(left)),
                "the product the other way round",
            )
        elif isinstance(op, (ast.BitAnd, ast.BitOr)):
            other = ast.BitOr() if isinstance(op, ast.BitAnd) else ast.BitAnd()
            yield _copy_with(node, op=other), "`|` and `&` swapped"
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.Not, ast.Invert)):
        if _int_value(node) is None:
            yield copy.deepcopy(node.operand), "the sign or negation left out"
    elif isinstance(node, ast.BoolOp):
        other = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        yield _copy_with(node, op=other), "`and` and `or` swapped"


def _comparisons(node: ast.AST, _: _Context) -> Iterator[tuple[ast.AST | None, str]]:
    if isinstance(node, ast.Compare) and len(node.ops) == 1:
        for other in _COMPARE_SWAPS.get(type(node.ops[0]), ()):
            yield _copy_with(node, ops=[other()]), "another comparison (strict or not, or the other direction)"


def _calls_dropped(node: ast.AST, _: _Context) -> Iterator[tuple[ast.AST | None, str]]:
    if not isinstance(node, ast.Call):
        return
    name = _call_name(node)
    if name in ("clamp", "clip"):
        yield from _bounds_dropped(node)
    if _is_method_of_value(node):
        yield copy.deepcopy(node.func.value), f"a step left out (`.{name}(…)`)"
        inner = node.func.value
        if isinstance(inner, ast.Call) and _is_method_of_value(inner):
            # x.a(A).b(B) -> x.b(B).a(A)
            swapped_inner = _copy_with(node, func=_copy_with(node.func, value=copy.deepcopy(inner.func.value)))
            swapped = _copy_with(inner, func=_copy_with(inner.func, value=swapped_inner))
            yield swapped, "two steps in the other order"
        if isinstance(inner, ast.BinOp) and isinstance(inner.op, ast.Pow):
            # (x ** p).mean(d) -> x.mean(d) ** p
            moved = _copy_with(node, func=_copy_with(node.func, value=copy.deepcopy(inner.left)))
            yield _copy_with(inner, left=moved), "two steps in the other order"
    elif name in _UNARY_FUNCS and node.args:
        yield copy.deepcopy(node.args[0]), f"a step left out (`{name}`)"
    yield from _term_moved(node)


def _term_moved(node: ast.Call) -> Iterator[tuple[ast.AST | None, str]]:
    """`f(a + b)` -> `f(a) + b`: a bias added after a nonlinearity instead of before (or the reverse)."""
    receiver = _is_method_of_value(node)
    inside = node.func.value if receiver else (node.args[0] if node.args else None)
    if not isinstance(inside, ast.BinOp) or not isinstance(inside.op, (ast.Add, ast.Sub)):
        return
    applied = (
        _copy_with(node, func=_copy_with(node.func, value=copy.deepcopy(inside.left)))
        if receiver
        else _copy_with(node, args=[copy.deepcopy(inside.left), *node.args[1:]])
    )
    yield _copy_with(inside, left=applied), "a term added after this step instead of before"


def _term_moved_in(node: ast.AST, _: _Context) -> Iterator[tuple[ast.AST | None, str]]:
    """`f(a) + b` -> `f(a + b)`: a term added before a step instead of after."""
    if not (
        isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)) and isinstance(node.left, ast.Call)
    ):
        return
    call_ = node.left
    inner = _copy_with(node, left=None)
    if _is_method_of_value(call_):
        inner.left = copy.deepcopy(call_.func.value)
        yield (
            _copy_with(call_, func=_copy_with(call_.func, value=inner)),
            "a term added before this step instead of after",
        )
    elif _call_name(call_) in _UNARY_FUNCS and call_.args:
        inner.left = copy.deepcopy(call_.args[0])
        yield _copy_with(call_, args=[inner, *call_.args[1:]]), "a term added before this step instead of after"


def _bounds_dropped(node: ast.Call) -> Iterator[tuple[ast.AST | None, str]]:
    """`clamp(lo, hi)` without one of its bounds."""
    skip = 0 if _is_method_of_value(node) else 1  # torch.clamp(x, lo, hi): x comes first
    bounds = dict(zip(("min", "max"), node.args[skip:], strict=False))
    bounds.update({kw.arg: kw.value for kw in node.keywords if kw.arg in ("min", "max")})
    if len(bounds) < 2:
        return
    for dropped in ("min", "max"):
        kept = "max" if dropped == "min" else "min"
        keywords = [ast.keyword(kept, copy.deepcopy(bounds[kept]))]
        yield (
            _copy_with(node, args=node.args[:skip], keywords=keywords),
            f"no {'lower' if dropped == 'min' else 'upper'} bound",
        )


def _constants(node: ast.AST, _: _Context) -> Iterator[tuple[ast.AST | None, str]]:
    value = _int_value(node)
    if value is not None:
        for other in (value + 1, value - 1, 0 if value == -1 else -1 if value == 0 else None):
            if other is not None and other != value:
                yield _int_node(other), "another number (off by one?)"
    elif isinstance(node, ast.Constant) and type(node.value) is float:
        c = node.value
        others: dict[float, float] = {}
        for x in (1.0, 0.0, c * 2, c / 2, *((1 - c,) if 0 < c < 1 else ())):
            others.setdefault(round(x, 9), x)  # 1 - 1e-12 is 1.0 again: try it once
        for other in others.values():
            if round(other, 9) != round(c, 9):
                yield ast.Constant(other), "another constant"


def _slices(node: ast.AST, _: _Context) -> Iterator[tuple[ast.AST | None, str]]:
    if not isinstance(node, ast.Slice) or node.step is not None:
        return
    if node.lower is not None and node.upper is not None:
        yield _copy_with(node, lower=None), "another slice"
        yield _copy_with(node, upper=None), "another slice"
    elif node.upper is not None:
        yield _copy_with(node, lower=node.upper, upper=None), "the other end of the slice"
    elif node.lower is not None:
        yield _copy_with(node, lower=None, upper=node.lower), "the other end of the slice"


def _variables(node: ast.AST, context: _Context) -> Iterator[tuple[ast.AST | None, str]]:
    if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id in context.local_names:
        for other in context.local_names:
            if other != node.id:
                yield ast.Name(other, ast.Load()), "another variable"
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and isinstance(node.ctx, ast.Load):
        for other in context.attributes.get(node.value.id, ()):
            if other != node.attr and node.value.id not in _MODULE_NAMES - {"self"}:
                yield _copy_with(node, attr=other), "another attribute"


def _arguments(node: ast.AST, _: _Context) -> Iterator[tuple[ast.AST | None, str]]:
    if isinstance(node, ast.Call):
        for k in range(len(node.args) - 1):
            a, b = node.args[k], node.args[k + 1]
            if not isinstance(a, ast.Constant) and not isinstance(b, ast.Constant):
                args = [*node.args[:k], copy.deepcopy(b), copy.deepcopy(a), *node.args[k + 2 :]]
                yield _copy_with(node, args=args), "two arguments swapped"
    if isinstance(node, ast.Return) and isinstance(node.value, ast.Tuple):
        elts = node.value.elts
        for k in range(len(elts) - 1):
            swapped = [*elts[:k], elts[k + 1], elts[k], *elts[k + 2 :]]
            yield (
                _copy_with(node, value=ast.Tuple([copy.deepcopy(e) for e in swapped], ast.Load())),
                "outputs in another order",
            )


def _patterns(node: ast.AST, _: _Context) -> Iterator[tuple[ast.AST | None, str]]:
    if not (isinstance(node, ast.Constant) and isinstance(node.value, str) and "->" in node.value):
        return
    text = node.value
    lhs, rhs = text.split("->")
    spaced = " " in text.strip()
    parts = [p.strip() for p in lhs.split(",")] + [rhs.strip()]
    for p, part in enumerate(parts):
        axes = part.split() if spaced else list(part.replace(" ", ""))
        for k in range(len(axes) - 1):
            swapped = [*axes[:k], axes[k + 1], axes[k], *axes[k + 2 :]]
            new_parts = [*parts[:p], (" " if spaced else "").join(swapped), *parts[p + 1 :]]
            new = (", " if spaced else ",").join(new_parts[:-1]) + " -> " + new_parts[-1]
            yield ast.Constant(new if spaced else new.replace(" ", "")), "two axes swapped in the einsum pattern"
        if p == len(parts) - 1:
            for k in range(len(axes)):
                kept = [*axes[:k], *axes[k + 1 :]]
                new = lhs.strip() + " -> " + (" " if spaced else "").join(kept)
                yield ast.Constant(new if spaced else new.replace(" ", "")), f"`{axes[k]}` summed away in the einsum"


def _statements(node: ast.AST, _: _Context) -> Iterator[tuple[ast.AST | None, str]]:
    if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Expr)) and not (
        isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
    ):
        yield None, "a step left out"
    if isinstance(node, ast.For) and not isinstance(node.iter, ast.Call):
        over = ast.Call(ast.Name("range", ast.Load()), [ast.Call(ast.Name("len", ast.Load()), [node.iter], [])], [])
        yield _copy_with(node, iter=over), "a loop over positions instead of the values"


def _wrapped(node: ast.AST, _: _Context) -> Iterator[tuple[ast.AST | None, str]]:
    """A step the solution doesn't take, on a value that is stored or returned: |x|, ReLU, x², √x."""
    if isinstance(node, (ast.Assign, ast.Return)) and node.value is not None and not isinstance(node.value, ast.Tuple):
        for method, args in (("abs", []), ("relu", []), ("pow", [ast.Constant(2)]), ("sqrt", [])):
            call_ = ast.Call(ast.Attribute(copy.deepcopy(node.value), method, ast.Load()), args, [])
            yield _copy_with(node, value=call_), f"an extra `.{method}(…)`"


def _precedence(node: ast.AST, _: _Context) -> Iterator[tuple[ast.AST | None, str]]:
    """`a / (b - c)` -> `a / b - c`: parentheses the solution needs, left out."""
    if not isinstance(node, ast.BinOp):
        return
    tight, loose = (ast.Mult, ast.Div, ast.MatMult, ast.Pow, ast.FloorDiv, ast.Mod), (ast.Add, ast.Sub)
    right, left = node.right, node.left
    if isinstance(right, ast.BinOp) and (
        (isinstance(node.op, tight) and isinstance(right.op, loose))
        or (isinstance(node.op, ast.Sub) and isinstance(right.op, loose))
        or (isinstance(node.op, ast.Div) and isinstance(right.op, (ast.Mult, ast.Div)))
    ):
        inner = _copy_with(node, right=copy.deepcopy(right.left))
        yield _copy_with(right, left=inner), "parentheses left out (operator precedence)"
    if isinstance(left, ast.BinOp) and isinstance(node.op, tight) and isinstance(left.op, loose):
        inner = _copy_with(node, left=copy.deepcopy(left.right))
        yield _copy_with(left, right=inner), "parentheses left out (operator precedence)"


def _index_axis(node: ast.AST, _: _Context) -> Iterator[tuple[ast.AST | None, str]]:
    """`W[:, i]` <-> `W[i]`: an index applied to another axis."""
    if not isinstance(node, ast.Subscript) or not isinstance(node.ctx, ast.Load):
        return
    index = node.slice
    full = ast.Slice(None, None, None)
    if isinstance(index, ast.Tuple) and len(index.elts) == 2 and _is_full(index.elts[0]):
        yield _copy_with(node, slice=copy.deepcopy(index.elts[1])), "an index on another axis"
    elif not isinstance(index, (ast.Tuple, ast.Slice)):
        yield _copy_with(node, slice=ast.Tuple([full, copy.deepcopy(index)], ast.Load())), "an index on another axis"


def _is_full(node: ast.AST) -> bool:
    return isinstance(node, ast.Slice) and node.lower is None and node.upper is None and node.step is None


# In order of how often learners make them: the time budget cuts the tail on a slow machine.
_EDITS: tuple[Edit, ...] = (
    _reductions,
    _dims,
    _terms,
    _comparisons,
    _calls_dropped,
    _term_moved_in,
    _constants,
    _slices,
    _precedence,
    _index_axis,
    _variables,
    _arguments,
    _patterns,
    _statements,
    _wrapped,
)
