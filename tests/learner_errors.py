"""What an error raised in the learner's code usually means: a hint from its message, the sizes in it named by the
checker's inputs, and the shapes of the tensors on the failing line (read from the learner's own frame)."""

from __future__ import annotations

import inspect
import re
import sys
import traceback
from pathlib import Path
from types import FrameType

import torch
from torch import Tensor

from tests.learner_operands import clashing_operands
from tests.learner_values import index_on_wrong_axis, wrong_operand
from tests.sizes import name_size

_TESTS_DIR = Path(__file__).resolve().parent


def _is_learner_frame(filename: str) -> bool:
    """Frames from the learner's notebook or files, not from the checkers or installed libraries."""
    path = Path(filename)
    if path.resolve().parent == _TESTS_DIR and not path.name.startswith("test_"):
        return False  # the checkers themselves (the suite's own test_*.py variants count as learner code)
    return not any(part in ("site-packages", "dist-packages") for part in path.parts) and not filename.startswith(
        sys.prefix
    )


def failing_line(err: BaseException) -> tuple[FrameType | None, str, list[str]]:
    """The learner's innermost frame in `err`'s traceback, its failing line, and the names on that line (in order,
    `self.x` kept whole): what the diagnoses that read the learner's own variables start from."""
    frame = None
    for f, _ in traceback.walk_tb(err.__traceback__):
        frame = f if _is_learner_frame(f.f_code.co_filename) else frame
    if frame is None:
        return None, "", []
    line = traceback.extract_stack(frame, limit=1)[-1].line or ""
    return frame, line, list(dict.fromkeys(re.findall(r"\b(?:self\.)?[A-Za-z_]\w*\b", line)))


def _line_shapes(err: BaseException) -> str:
    """'; on that line, x: [7, 4, 5], self.W_enc: [3, 5, 6]': the shapes of the tensors named on the failing
    line of the learner's code, read from its frame, so a wrong operand shows without a print."""
    frame, _, names = failing_line(err)
    shapes: dict[str, list[int]] = {}
    for name in names:
        owner, _, attr = name.rpartition(".")
        value = frame.f_locals.get(name) if not owner else getattr(frame.f_locals.get(owner), attr, None)
        if isinstance(value, Tensor) and value.ndim > 0:
            shapes.setdefault(name, list(value.shape))
    return "; on that line, " + ", ".join(f"{n}: {s}" for n, s in list(shapes.items())[:6]) if shapes else ""


# What torch's and Python's common errors usually mean in an exercise (the message pattern, then the hint).
_ERROR_HINTS: list[tuple[str, str]] = [
    (
        r"size of tensor a \((\d+)\) must match the size of tensor b \((\d+)\)",
        "two operands with sizes {0} and {1} met on that line: print their shapes; usually a reduction left out or "
        "over the wrong axis (a .mean(-1) or .sum(-1) missing leaves an extra axis), a missing unsqueeze ([..., None]) "
        "or keepdim=True (or one too many), a transposed operand (.mT; on a 3-d tensor .T reverses every axis), an "
        "index or slice over the wrong axis, or another tensor than the one meant (the encoder's bias where the "
        "decoder's belongs?)",
    ),
    (
        r"not implemented for '(Bool|Long|Int|Byte)'",
        "a float operation (a random draw, a mean, a softmax) on a {0} tensor: draw floats with the shape "
        "(torch.rand(x.shape)) or convert first (x.float())",
    ),
    (
        r"a Tensor with \d+ elements cannot be converted to Scalar",
        ".item(), float() or int() on a tensor with several values: keep it a tensor (no .item()), or reduce it to "
        "one number first",
    ),
    (
        r"mat1 and mat2 shapes cannot be multiplied|Expected size for first two dimensions of batch2",
        "a matrix product whose inner sizes differ: one operand needs transposing (.mT), the wrong axes meet, or an "
        "operand is another tensor than the one meant (an SAE's latents where its input or output belongs?)",
    ),
    (
        r"size mismatch, got input \((\d+)\), mat \((\d+)x(\d+)\), vec \((\d+)\)",
        "a matrix [{1}×{2}] times a vector of length {3} (matrix @ vector): the vector meets the matrix's LAST axis "
        "({2}), so a vector of length {3} belongs on the left (vector @ matrix meets the first axis, {1}): the "
        "operands in the wrong order, the matrix needs transposing (.mT), or a row taken where a column belongs (M[i] "
        "vs M[:, i])",
    ),
    (
        r"inconsistent tensor size, expected tensor \[(\d+)\] and src \[(\d+)\]",
        "a dot product of vectors of lengths {0} and {1}: one of them is another vector than the one meant, or "
        "needs a matrix between them",
    ),
    (
        r"expand\(\w+\.\w+\{\[([\d, ]*)\]\}, size=\[([\d, ]*)\]\): the number of sizes provided",
        "a tensor of shape [{0}] was put where [{1}] fits (an assignment x[...] = value, or expand): it has more "
        "axes than the slot; a reduction left out (a .sum(-1) over the last axis?), or an index that picks too "
        "little",
    ),
    (r"einsum\(\)", "compare each operand's actual shape with the axes its einsum pattern names, in order"),
    (
        r"Boolean value of Tensor with more than one value is ambiguous",
        "a tensor used as a Python bool (in `if`, `and`, `or`, a chained comparison like 0 <= x <= 1, or Python's "
        "max()/min() on a tensor): combine elementwise conditions with & and |, e.g. (x >= 0) & (x <= 1), and use "
        "x.clamp(min=1) or torch.maximum(x, y) for an elementwise max",
    ),
    (
        r"shape mismatch: value tensor of shape \[([\d, ]*)\] cannot be broadcast to indexing result of shape "
        r"\[([\d, ]*)\]",
        "an assignment x[index] = value whose value [{0}] doesn't fit the part the index picks [{1}]: check the "
        "index (a nonzero() result used as one index picks whole rows along the first axis: unpack it, or use "
        "as_tuple=True) and the value's axes (the sizes it was drawn or built with)",
    ),
    (
        r"leaf Variable that requires grad is being used in an in-place operation",
        "an input that requires grad was changed in place (add_, clamp_, x[...] = ...): compute a new tensor instead",
    ),
    (
        r"does not require grad and does not have a grad_fn|One of the differentiated Tensors does not require grad",
        "the gradient was asked of a value computed without autograd: inside torch.no_grad(), from .detach() or "
        ".data, or with respect to tensors the value was not computed from (call requires_grad_(True) on the "
        "tensors you differentiate, then compute from them)",
    ),
    (
        r"stack expects each tensor to be equal size",
        "torch.stack needs tensors of equal shape: reduce each one first (e.g. sum it), or use torch.cat",
    ),
    (
        r"torch\.return_types\.(max|min|sort|topk|kthvalue|median|mode)",
        "{0}(dim=...) returns a (values, indices) pair: use .values (or torch.amax / torch.amin)",
    ),
    (
        r"only integer tensors of a single element can be converted to an index",
        "a tensor or list was used where a single index or number was expected: check which variable that is "
        "(arguments passed or declared in another order than the signature, or a config list instead of a tensor "
        "buffer?)",
    ),
    (
        r"index (\d+) is out of bounds for dimension \d+ with size (\d+)",
        "an index of {0} on an axis of size {1}: a flat index (argmax or topk without dim= count positions in the "
        "flattened tensor), an index meant for another axis, or an off-by-one",
    ),
    (
        r"selected index k out of range",
        "topk or kthvalue asked for more entries than the axis has: check k (multiplied twice?) and the dim it "
        "runs over",
    ),
    (
        r"singular",
        "a linear-algebra routine met a singular matrix: an inverse or solve where the formula divides elementwise, "
        "or a normaliser (a row sum?) that is 0",
    ),
    (
        r"'(float|int|bool)' object has no attribute '(\w+)'",
        "a Python {0} was used as a tensor (.{1}): arguments declared or passed in another order than the "
        "signature, or a number where a tensor belongs",
    ),
    (
        r"name '(\w+)' is not defined",
        "`{0}` isn't defined where it is used: a variable of another function or cell (an autograd.Function's "
        "backward can't see forward's locals: store it on ctx, `ctx.{0} = {0}`), or a typo?",
    ),
    (
        r"Tensors must have same number of dimensions: got (\d+) and (\d+)",
        "torch.cat met tensors with {0} and {1} axes: collect whole tensors with list.append (`blocks += x` extends "
        "a list by x's rows), or add the missing axis (unsqueeze) before joining",
    ),
    (
        r"too many indices for tensor of dimension (\d+)",
        "an index with more axes than the tensor has ({0}): a scalar or a reduced tensor (a loss, a total) indexed "
        "as if it still had its batch or feature axes? Index the unreduced tensor",
    ),
    (
        r"argument 'keepdim' \(position 2\) must be bool",
        "several axes go in one tuple: x.sum((-2, -1)), not x.sum(-2, -1) (the second number is read as keepdim)",
    ),
    (
        r"'Tensor' object is not callable",
        "a tensor was called like a function: drop the parentheses (`self.data`, not `self.data()`), or a variable "
        "holding a tensor hides the function of the same name",
    ),
    (
        r"unsupported operand type\(s\) for .*'(builtin_function_or_method|method)'",
        "a method used without calling it: `x.abs` where `x.abs()` was meant (the parentheses are missing)",
    ),
    (
        r"argument '\w+'.* must be Tensor, not (\w+)",
        "a {0} was passed where torch expects a tensor: torch.maximum, minimum and heaviside take two tensors (use "
        "x.clamp(min=...) for a number, or torch.full_like(x, value))",
    ),
    (
        r"Sizes of tensors must match except in dimension (\d+)",
        "torch.cat joins along dim {0}, so every other axis must match: another dim, or torch.stack, was meant?",
    ),
    (
        r"takes (\d+) positional arguments? but (\d+) (?:were|was) given|missing \d+ required positional argument",
        "a function was called with another number of arguments than it declares: compare its signature with the "
        "exercise's",
    ),
    (
        r"index -\d+ is out of bounds",
        "a negative index reached an index operation: a label of -1 (no label?) used as an index, or an axis mix-up",
    ),
    (
        r"unsupported operand type\(s\) for .*NoneType",
        "a value is None: a function without `return`, or an "
        "in-place method's result (x.add_ returns x, but list.sort and dict.update return None) used as a value",
    ),
    (
        r"where expected condition to be a boolean tensor, but got a tensor with dtype (\w+)",
        "torch.where needs a boolean condition, and this one is {0}: a 0/1 mask (from torch.bernoulli or a float "
        "product) must be made boolean first (mask.bool(), or draw it as torch.rand(...) < p)",
    ),
    (
        r"^(?=[\s\S]*(?:Expected 2D|dimensions))[\s\S]*?\b(max_pool[12]d|avg_pool[12]d)\b",  # a shape error only
        "{0} pools over windows of a [batch, channels, length] (1d) or [batch, channels, h, w] (2d) tensor: for a "
        "max or mean over one axis of a bigger tensor use x.amax(dim=...) or x.mean(dim=...)",
    ),
    (
        r"Legacy autograd function with non-static forward method is deprecated",
        "call a torch.autograd.Function through .apply: MyFunction.apply(x, ...), not MyFunction()(x)",
    ),
]


def _error_hint(err: BaseException) -> str | None:
    """A hint for an error raised in the learner's code, from what its message usually means (None when nothing
    fits, or when reading the learner's frames fails: a hint must never be why a check crashes)."""
    try:
        return _hint_for(err)
    except Exception:
        return None


def _hint_for(err: BaseException) -> str | None:
    message = str(err)
    frame, line, _ = failing_line(err)
    if (direct := _function_forward_called(err) or _none_grad(message, line)) is not None:
        return direct
    operand = wrong_operand(err, frame, line)  # "`self.cfg.x` is a list here ...": what the values were
    for pattern, hint in _ERROR_HINTS:
        match = re.search(pattern, message)
        if match:
            found = _one_hot_reading(message, err) + hint.format(*match.groups()) + _sizes_named(message, err)
            found = (f"{operand}. " if operand else "") + found
            axis = index_on_wrong_axis(err, frame, line)
            clash = clashing_operands(frame, line) if "must match the size" in message else ""
            return (
                found
                + clash
                + (axis or _first_axis_indexed(match.groups(), err) or _row_or_column(match.groups(), err))
            )
    return operand or _missing_attribute_hint(err) or _missing_key_hint(err)


def _one_hot_reading(message: str, err: BaseException) -> str:
    """For a size mismatch in learner code that calls one_hot without num_classes (on the failing line or anywhere
    in that function): one_hot's width is max(label) + 1, which is fewer columns than the classes whenever the
    largest class is missing from the labels. '' otherwise."""
    if "must match the size of tensor" not in message:
        return ""
    frame, line, _ = failing_line(err)
    if frame is None:
        return ""
    try:
        source = "".join(inspect.getsourcelines(frame.f_code)[0])
    except (OSError, TypeError):
        source = line
    calls = re.findall(r"one_hot\(([^()]*(?:\([^()]*\)[^()]*)*)\)", source)
    if not any("num_classes" not in args and args.count(",") == 0 for args in calls):
        return ""
    return (
        "your code calls one_hot without num_classes: F.one_hot(labels) makes max(label)+1 columns (fewer than the "
        "classes when the largest class does not occur), so pass num_classes=logits.shape[-1]. If that is not it: "
    )


_CTX_ONLY = ("save_for_backward", "saved_tensors", "needs_input_grad", "mark_dirty", "mark_non_differentiable")


def _function_forward_called(err: BaseException) -> str | None:
    """For an error raised inside an autograd.Function's forward (or backward) called directly, with a ctx that is
    not autograd's (None, or another object), or for a None that has no `ctx` attribute such as save_for_backward:
    the Function is called through .apply."""
    direct = "an autograd.Function is called with .apply(x, ...), not .forward(ctx, ...) (nor .backward)"
    for frame, _ in traceback.walk_tb(err.__traceback__):
        code = frame.f_code
        if code.co_name not in ("forward", "backward") or code.co_argcount == 0:
            continue
        owner = frame.f_globals.get(getattr(code, "co_qualname", "").split(".")[0])
        ctx = frame.f_locals.get(code.co_varnames[0], None)
        function = isinstance(owner, type) and issubclass(owner, torch.autograd.Function)
        if function and owner.setup_context is not torch.autograd.Function.setup_context:
            continue  # forward(x, ...) without a ctx: its first argument is an input
        if (function or (code.co_varnames[0] == "ctx" and ctx is None)) and not isinstance(
            ctx, torch.autograd.function.FunctionCtx
        ):
            name = owner.__name__ if function else "the Function"
            return (
                f"{name}.{code.co_name} ran with {type(ctx).__name__} as its ctx, so it was called directly: "
                f"{direct}: {name}.apply(...) makes the ctx itself and records the backward"
            )
    match = re.search(r"'NoneType' object has no attribute '(\w+)'", str(err))
    if isinstance(err, AttributeError) and match and match.group(1) in _CTX_ONLY:
        return f"ctx is None where `ctx.{match.group(1)}` ran: {direct}, which makes the ctx itself"
    return None


def _none_grad(message: str, line: str) -> str | None:
    """A `.grad` still None where the failing `line` uses it (a None operand or attribute error on a line reading
    `x.grad`): what leaves a gradient unfilled."""
    if "NoneType" not in message or not re.search(r"\.grad\b(?!\s*\()", line):
        return None
    return (
        "a `.grad` read on that line is still None: backward fills `.grad` only on leaf tensors with "
        "requires_grad=True that the differentiated value depends on (a non-leaf needs .retain_grad() first), and "
        "zero_grad(set_to_none) or `x.grad = None` empties it again"
    )


def _missing_key_hint(err: BaseException) -> str | None:
    """For a KeyError: which keys the dict named on the learner's failing line had (read from its frame)."""
    if not isinstance(err, KeyError) or not err.args:
        return None
    key = err.args[0]
    frame, _, names = failing_line(err)
    for name in names if frame is not None else []:
        value = frame.f_locals.get(name)
        if isinstance(value, dict) and key not in value:
            has = f"has {', '.join(repr(k) for k in list(value)[:8])}" if value else "is empty"
            return (
                f"no key {key!r}; `{name}` {has}: stored under another key, or read before it was stored (a hook "
                "that reads runs before the one that writes?)"
            )
    return f"no key {key!r} there: stored under another key, or read before it was stored?"


def _missing_attribute_hint(err: BaseException) -> str | None:
    """For `'X' object has no attribute 'Y'`: what the object does have (its tensors and sub-modules first), read
    from the learner's frames, since a name from another exercise's class or a typo is the usual cause."""
    match = re.search(r"'(\w+)' object has no attribute '(\w+)'", str(err))
    if not isinstance(err, AttributeError) or match is None:
        return None
    kind, missing = match.groups()
    if kind == "Tensor":
        return f"tensors have no `.{missing}`: a typo, a numpy or list method, or a tensor where a module was meant?"
    if kind in ("tuple", "list", "dict", "int", "float", "str", "NoneType"):
        return (
            f"a {kind} has no `.{missing}`: a {kind} where a tensor was meant? (torch.autograd.grad, .max(dim) and "
            "topk return tuples: index or unpack them; a Python number or list needs torch.tensor)"
        )
    owner = None
    for frame, _ in traceback.walk_tb(err.__traceback__):
        owner = next((v for v in frame.f_locals.values() if type(v).__name__ == kind), owner)
    if owner is None:
        return f"`{kind}` has no `{missing}`: a typo, or a name from another exercise's class?"
    if hasattr(owner, "named_parameters"):
        names = [n for n, _ in owner.named_parameters(recurse=False)]
        names += [n for n, _ in owner.named_buffers(recurse=False)] + [n for n, _ in owner.named_children()]
    else:
        names = []
    attributes = getattr(owner, "__dict__", {})
    names += [n for n in attributes if not n.startswith("_") and n not in [*names, "training"]]
    shown = ", ".join(f"`{n}`" for n in names[:10]) or "no public attributes"
    return f"`{kind}` has no `{missing}`; it has {shown}: a name from another exercise's class, or a typo?"


def _sizes_named(message: str, err: BaseException) -> str:
    """' (in your inputs, 3 is cfg.n_inst; 5 is terms.shape[1])' for the sizes in an error message, or ''."""
    sizes = dict.fromkeys(int(n) for n in re.findall(r"(?<![\w.])(\d+)(?![\w.])", message) if int(n) > 1)
    frames = [frame for frame, _ in traceback.walk_tb(err.__traceback__)]
    known = [name_size(n, frames) for n in sizes]
    known = [k for k in known if k]
    return f" (in your inputs, {'; '.join(known)})" if known else ""


def _first_axis_indexed(sizes: tuple[str, ...], err: BaseException) -> str:
    """'; a: [6, 8] is pre's shape [64, 6, 8] without its first axis (64): ...' when a tensor on the failing line has
    the shape of one of the learner's tensors with its first axis gone, and that axis's size is one the error names:
    x[i] takes entry i of the first axis where x[:, i] (axis 1) may have been meant. A question, never a verdict."""
    named = {int(n) for n in sizes if isinstance(n, str) and n.isdigit()}  # a pattern's groups are not all sizes
    frame, _, names = failing_line(err) if named else (None, "", [])
    if frame is None:
        return ""
    local = {n: v for n, v in frame.f_locals.items() if isinstance(v, Tensor) and v.ndim > 1}
    for name in names:
        value = frame.f_locals.get(name)
        if not isinstance(value, Tensor) or value.ndim == 0:
            continue
        for other, x in local.items():
            first = x.shape[0]
            if other != name and x.shape[1:] == value.shape and first in named and first != x.shape[1]:
                return (
                    f"; {name}: {list(value.shape)} has the shape of {other} {list(x.shape)} without its first axis "
                    f"({first}): {other}[i] takes entry i of that first axis (an example, if {first} is the batch) "
                    f"where {other}[:, i] (entry i of axis 1, size {x.shape[1]}: an instance?) may have been meant"
                )
    return ""


_MATRIX = r"((?:self\.)?[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)"
_ROW_INDEX, _COLUMN_INDEX = _MATRIX + r"\[([^\[\]:,]+)\]", _MATRIX + r"\[\s*:\s*,([^\[\]:,]+)\]"


def _row_or_column(sizes: tuple[str, ...], err: BaseException) -> str:
    """'; tc.W_enc[latent] is row latent of tc.W_enc [128, 2048] (length 2048): ...' when the failing line indexes a
    matrix with one index (M[i]), or takes a column (M[:, i]), and both its row length and its column length are sizes
    the error names: the row may be where the column was meant, or the reverse. A question, never a verdict."""
    named = {int(n) for n in sizes if isinstance(n, str) and n.isdigit()}
    frame, line, _ = failing_line(err) if named else (None, "", [])
    if frame is None:
        return ""
    for pattern, column in ((_ROW_INDEX, False), (_COLUMN_INDEX, True)):
        for expr, index in re.findall(pattern, line):
            value = _dotted_value(expr, frame)
            if not isinstance(value, Tensor) or value.ndim != 2:
                continue
            n_rows, n_cols = value.shape
            if n_rows != n_cols and {n_rows, n_cols} <= named:
                i = index.strip()
                row, col = f"{expr}[{i}]", f"{expr}[:, {i}]"
                if column:
                    return (
                        f"; {col} is column {i} of {expr} {list(value.shape)} (length {n_rows}): if row {i} was "
                        f"meant, {row} (length {n_cols}) takes it"
                    )
                return (
                    f"; {row} is row {i} of {expr} {list(value.shape)} (length {n_cols}): if column {i} was meant, "
                    f"{col} (length {n_rows}) takes it"
                )
    return ""


def _dotted_value(expr: str, frame: FrameType) -> object:
    base, *attrs = expr.split(".")
    value = frame.f_locals.get(base, frame.f_globals.get(base))
    for attr in attrs:
        value = getattr(value, attr, None)
    return value
