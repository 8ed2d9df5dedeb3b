"""The edits `tests.mutants` tries on a solution: each a function of an AST node that yields the node's
one-edit replacements (None deletes a statement), each with a short label of the slip it stands for.

Each edit is a slip learners make: a sum for a mean, another axis, a term or step left out, steps in the other
order, a strict comparison, another variable or field, an off-by-one, a bias moved across a nonlinearity,
parentheses left out, an index on another axis, swapped arguments or einsum axes. `EDITS` lists them most common
first, since the time budget may cut the tail on a slow machine.
"""

from __future__ import annotations

import ast
import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

MODULE_NAMES = {"torch", "F", "nn", "np", "einops", "math", "functional", "linalg", "self", "cls", "super"}
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


@dataclass
class Context:
    local_names: list[str]
    attributes: dict[str, list[str]]  # base name -> attributes read from it

    @staticmethod
    def of(fdef: ast.FunctionDef) -> Context:
        names = [a.arg for a in [*fdef.args.posonlyargs, *fdef.args.args, *fdef.args.kwonlyargs]]
        attributes: dict[str, list[str]] = {}
        # a comprehension's own variable is a loop index, not a value one could mix up with the others
        bound = {
            n.id
            for c in ast.walk(fdef)
            if isinstance(c, ast.comprehension)
            for n in ast.walk(c.target)
            if isinstance(n, ast.Name)
        }
        for node in ast.walk(fdef):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store) and node.id not in names:
                names.append(node.id)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                seen = attributes.setdefault(node.value.id, [])
                if node.attr not in seen:
                    seen.append(node.attr)
        return Context([n for n in names if n not in ("self", "cls") and n not in bound], attributes)


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
    return isinstance(func, ast.Attribute) and not (isinstance(func.value, ast.Name) and func.value.id in MODULE_NAMES)


Edit = Callable[[ast.AST, Context], Iterator[tuple[ast.AST | None, str]]]


def _reductions(node: ast.AST, _: Context) -> Iterator[tuple[ast.AST | None, str]]:
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
        return
    for other in _REDUCTION_SWAPS.get(node.func.attr, ()):
        yield _copy_with(node, func=_copy_with(node.func, attr=other)), f"`{other}` where `{node.func.attr}` belongs"


def _dims(node: ast.AST, _: Context) -> Iterator[tuple[ast.AST | None, str]]:
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


def _terms(node: ast.AST, _: Context) -> Iterator[tuple[ast.AST | None, str]]:
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


def _comparisons(node: ast.AST, _: Context) -> Iterator[tuple[ast.AST | None, str]]:
    if isinstance(node, ast.Compare) and len(node.ops) == 1:
        for other in _COMPARE_SWAPS.get(type(node.ops[0]), ()):
            yield _copy_with(node, ops=[other()]), "another comparison (strict or not, or the other direction)"


def _calls_dropped(node: ast.AST, _: Context) -> Iterator[tuple[ast.AST | None, str]]:
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


def _term_moved_in(node: ast.AST, _: Context) -> Iterator[tuple[ast.AST | None, str]]:
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


def _constants(node: ast.AST, _: Context) -> Iterator[tuple[ast.AST | None, str]]:
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


def _slices(node: ast.AST, _: Context) -> Iterator[tuple[ast.AST | None, str]]:
    if not isinstance(node, ast.Slice) or node.step is not None:
        return
    if node.lower is not None and node.upper is not None:
        yield _copy_with(node, lower=None), "another slice"
        yield _copy_with(node, upper=None), "another slice"
    elif node.upper is not None:
        yield _copy_with(node, lower=node.upper, upper=None), "the other end of the slice"
    elif node.lower is not None:
        yield _copy_with(node, lower=None, upper=node.lower), "the other end of the slice"


def _variables(node: ast.AST, context: Context) -> Iterator[tuple[ast.AST | None, str]]:
    if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id in context.local_names:
        for other in context.local_names:
            if other != node.id:
                yield ast.Name(other, ast.Load()), "another variable"
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and isinstance(node.ctx, ast.Load):
        for other in context.attributes.get(node.value.id, ()):
            if other != node.attr and node.value.id not in MODULE_NAMES - {"self"}:
                yield _copy_with(node, attr=other), "another attribute"


def _arguments(node: ast.AST, _: Context) -> Iterator[tuple[ast.AST | None, str]]:
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


def _patterns(node: ast.AST, _: Context) -> Iterator[tuple[ast.AST | None, str]]:
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
        if p < len(parts) - 1:
            yield from _axis_renamed(parts, p, axes, spaced)
        if p == len(parts) - 1:
            for k in range(len(axes)):
                kept = [*axes[:k], *axes[k + 1 :]]
                new = lhs.strip() + " -> " + (" " if spaced else "").join(kept)
                yield ast.Constant(new if spaced else new.replace(" ", "")), f"`{axes[k]}` summed away in the einsum"


def _axis_renamed(parts: list[str], p: int, axes: list[str], spaced: bool) -> Iterator[tuple[ast.AST, str]]:
    """An axis two inputs share, spelled differently in one of them: einsum then sums each copy on its own, a
    product of two sums where a sum of products belongs."""
    inputs = [part.split() if spaced else list(part.replace(" ", "")) for part in parts[:-1]]
    used = {axis for part in [*inputs, parts[-1].split() if spaced else list(parts[-1])] for axis in part}
    for k, axis in enumerate(axes):
        if axis in ("...", ".") or sum(axis in other for other in inputs) < 2:
            continue
        fresh = next((c for c in "zyxwvutsrq" if c not in used), None) if not spaced else f"{axis}_other"
        if fresh is None or fresh in used:
            continue
        renamed = [*inputs[:p], [*axes[:k], fresh, *axes[k + 1 :]], *inputs[p + 1 :]]
        joined = [(" " if spaced else "").join(part) for part in renamed]
        new = (", " if spaced else ",").join(joined) + " -> " + parts[-1]
        label = f"`{axis}` spelled differently in one input of the einsum (each copy summed on its own)"
        yield ast.Constant(new if spaced else new.replace(" ", "")), label


def _statements(node: ast.AST, _: Context) -> Iterator[tuple[ast.AST | None, str]]:
    if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Expr)) and not (
        isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
    ):
        yield None, "a step left out"
    if isinstance(node, ast.For) and not isinstance(node.iter, ast.Call):
        over = ast.Call(ast.Name("range", ast.Load()), [ast.Call(ast.Name("len", ast.Load()), [node.iter], [])], [])
        yield _copy_with(node, iter=over), "a loop over positions instead of the values"


def _wrapped(node: ast.AST, _: Context) -> Iterator[tuple[ast.AST | None, str]]:
    """A step the solution doesn't take, on a value that is stored or returned: |x|, ReLU, x², √x."""
    if isinstance(node, (ast.Assign, ast.Return)) and node.value is not None and not isinstance(node.value, ast.Tuple):
        for method, args in (("abs", []), ("relu", []), ("pow", [ast.Constant(2)]), ("sqrt", [])):
            call_ = ast.Call(ast.Attribute(copy.deepcopy(node.value), method, ast.Load()), args, [])
            yield _copy_with(node, value=call_), f"an extra `.{method}(…)`"


def _complement(node: ast.AST, _: Context) -> Iterator[tuple[ast.AST | None, str]]:
    """`1 - x` where the solution has x (a probability or a ramp the wrong way round)."""
    if isinstance(node, (ast.Assign, ast.Return)) and node.value is not None and not isinstance(node.value, ast.Tuple):
        yield _copy_with(node, value=ast.BinOp(ast.Constant(1), ast.Sub(), copy.deepcopy(node.value))), "1 minus it"


_REDUCE = {"sum", "mean", "norm", "amax", "max"}


def _reduced(node: ast.AST) -> bool:
    return isinstance(node, ast.Call) and _is_method_of_value(node) and node.func.attr in _REDUCE


def _reduction_moved(node: ast.AST, _: Context) -> Iterator[tuple[ast.AST | None, str]]:
    """`a / x.sum(d)` -> `(a / x).sum(d)`: a reduction taken after a step instead of before (or squared again)."""
    if _reduced(node):
        square = ast.Call(ast.Attribute(copy.deepcopy(node), "pow", ast.Load()), [ast.Constant(2)], [])
        yield square, "squared again"
        yield ast.Call(ast.Attribute(copy.deepcopy(node), "sqrt", ast.Load()), [], []), "an extra square root"
    if not isinstance(node, ast.BinOp) or not isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div)):
        return
    for side, other in (("right", "left"), ("left", "right")):
        reduced = getattr(node, side)
        if _reduced(reduced):
            inner = _copy_with(
                node, **{side: copy.deepcopy(reduced.func.value), other: copy.deepcopy(getattr(node, other))}
            )
            moved = _copy_with(reduced, func=_copy_with(reduced.func, value=inner))
            yield moved, f"`.{reduced.func.attr}(…)` taken after this step instead of before"


def _names_off_by_one(node: ast.AST, context: Context) -> Iterator[tuple[ast.AST | None, str]]:
    """`n + 1` or `n - 1` for a size or count used in arithmetic or a slice."""
    if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id in context.local_names:
        for op in (ast.Add(), ast.Sub()):
            yield ast.BinOp(ast.Name(node.id, ast.Load()), op, ast.Constant(1)), "off by one"


def _precedence(node: ast.AST, _: Context) -> Iterator[tuple[ast.AST | None, str]]:
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


def _index_axis(node: ast.AST, _: Context) -> Iterator[tuple[ast.AST | None, str]]:
    """`W[:, i]` <-> `W[i]`: an index applied to another axis."""
    if not isinstance(node, ast.Subscript) or not isinstance(node.ctx, ast.Load):
        return
    index = node.slice
    full = ast.Slice(None, None, None)
    if isinstance(index, ast.Tuple) and len(index.elts) == 2 and _is_full(index.elts[0]):
        yield _copy_with(node, slice=copy.deepcopy(index.elts[1])), "an index on another axis"
    elif not isinstance(index, (ast.Tuple, ast.Slice)):
        yield _copy_with(node, slice=ast.Tuple([full, copy.deepcopy(index)], ast.Load())), "an index on another axis"


def _guards(node: ast.AST, _: Context) -> Iterator[tuple[ast.AST | None, str]]:
    """`x.clamp(min=c)` -> `x + c` (a constant added to keep a divisor away from 0), and a divisor off by one."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and _is_method_of_value(node):
        bound = next((k.value for k in node.keywords if k.arg == "min"), None)
        if node.func.attr == "clamp_min" and node.args:
            bound = node.args[0]
        if node.func.attr in ("clamp", "clamp_min") and bound is not None:
            summed = ast.BinOp(copy.deepcopy(node.func.value), ast.Add(), copy.deepcopy(bound))
            yield summed, "a constant added instead of a lower bound (x + c where the solution clamps at c)"
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div) and not isinstance(node.right, ast.Name):
        for op in (ast.Add(), ast.Sub()):
            divisor = ast.BinOp(copy.deepcopy(node.right), op, ast.Constant(1))
            yield _copy_with(node, right=divisor), "a divisor off by one"


def _norms(node: ast.AST, _: Context) -> Iterator[tuple[ast.AST | None, str]]:
    """`x.norm(dim=d)` written by hand with a slip: squared (no root), without the squares, or as an L1 norm; and
    `x.sum(d)` (an L1 norm of non-negative values, e.g. a sparsity penalty) written as the L2 norm `x.norm(dim=d)`."""
    if isinstance(node, ast.Call) and _is_method_of_value(node) and node.func.attr == "sum":
        if len(node.args) <= 2 and all(k.arg in ("dim", "keepdim") for k in node.keywords):
            keywords = [ast.keyword(k, copy.deepcopy(a)) for k, a in zip(("dim", "keepdim"), node.args, strict=False)]
            keywords += copy.deepcopy(node.keywords)
            norm = ast.Call(ast.Attribute(copy.deepcopy(node.func.value), "norm", ast.Load()), [], keywords)
            yield norm, "an L2 norm (√Σx²) where the sum (the L1 norm Σ|x|) belongs"
        return
    if not (isinstance(node, ast.Call) and _is_method_of_value(node) and node.func.attr == "norm"):
        return
    p = node.args[0] if node.args else None
    if any(k.arg in ("p", "ord") for k in node.keywords) or (p is not None and getattr(p, "value", 0) not in (2, None)):
        return  # another norm than the L2 one (a positional p of 1, inf, ...), or an unusual signature
    args = node.args[1:]  # norm's positional arguments are (p, dim, keepdim); sum's are (dim, keepdim)
    value = node.func.value

    def summed(of: ast.AST) -> ast.Call:
        return ast.Call(ast.Attribute(of, "sum", ast.Load()), copy.deepcopy(args), copy.deepcopy(node.keywords))

    squares = ast.Call(ast.Attribute(copy.deepcopy(value), "pow", ast.Load()), [ast.Constant(2)], [])
    yield summed(squares), "a squared norm (the root left out)"
    yield ast.Call(ast.Attribute(summed(copy.deepcopy(value)), "sqrt", ast.Load()), [], []), "a norm without squares"
    yield summed(ast.Call(ast.Attribute(copy.deepcopy(value), "abs", ast.Load()), [], [])), "an L1 norm (Σ|x|)"


def _is_full(node: ast.AST) -> bool:
    return isinstance(node, ast.Slice) and node.lower is None and node.upper is None and node.step is None


# In order of how often learners make them: the time budget cuts the tail on a slow machine.
EDITS: tuple[Edit, ...] = (
    _reductions,
    _dims,
    _terms,
    _comparisons,
    _calls_dropped,
    _term_moved_in,
    _constants,
    _slices,
    _reduction_moved,
    _complement,
    _precedence,
    _index_axis,
    _variables,
    _arguments,
    _patterns,
    _statements,
    _wrapped,
    _names_off_by_one,
    _guards,
    _norms,
)
