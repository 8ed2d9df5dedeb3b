"""What part 8's checkers observe about the learner's use of its inputs (from the twelfth fresh held-out
measurement), rather than one mutant matched:

* in-place edits: every checker saves private copies of the inputs it passes (its own tensors, never a clone the
  learner's code doesn't see) and compares them right after the call, before any expected value is computed from
  them (`W -= term` in a deflation loop, `delta = W; delta -= U @ V`, `a.mul_(mask)` are named, not diagnosed as
  wrong values computed from the already-edited input); a changed requires_grad or .grad is named too (`sources =
  init` then `s.requires_grad_()` on each);
* a function that must be deterministic returning other values on a second call (randomness drawn inside);
* the asked list returned inside a tuple with another value (`return sources, loss`);
* a one-element tensor where a scalar belongs (shape (1,)): what builds one, listed;
* an output axis whose size is another input's size (3 instances where K = 5 terms belong): the size named;
* an instance's output that changes with another instance's inputs (a sum or product over `inst`): named by input;
* a size error in stochastic_reconstruction_losses: which inputs (and which matrix) have the sizes that met;
* `.grad` read as None in adversarial_sources: whether the tensor read is a leaf, and the usual causes.
"""

from __future__ import annotations

import linecache
import re
import traceback
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from tests.checking import CheckFailed, _describe_error, _is_learner_frame, fail
from tests.learner_errors import failing_line
from tests.part8_parameter_decomposition_probes import _chain_layer

Inputs = dict[str, Any]  # name -> a tensor, or a list of tensors (one per matrix)


# --------------------------------------------------------------------------------------------
# In-place edits of the inputs
# --------------------------------------------------------------------------------------------
def _entries(inputs: Inputs) -> list[tuple[str, Any]]:
    out = []
    for name, v in inputs.items():
        out += [(f"{name}[{n}]", t) for n, t in enumerate(v)] if isinstance(v, list | tuple) else [(name, v)]
    return out


def _flags(t: Tensor) -> tuple[bool, Tensor | None]:
    """The attributes of an input a caller relies on besides its values: requires_grad and .grad."""
    return t.requires_grad, None if t.grad is None else t.grad.detach().clone()


def snapshot(inputs: Inputs) -> list[tuple[str, Tensor, Any]]:
    """Private copies of the tensors the checker is about to pass (values, requires_grad, .grad), taken before the
    learner's call."""
    return [(name, t.detach().clone(), _flags(t)) for name, t in _entries(inputs)]


def _same(t: Any, copy: Tensor) -> bool:
    if not isinstance(t, Tensor) or t.shape != copy.shape or t.dtype != copy.dtype or t.device != copy.device:
        return False
    return torch.equal(t.detach(), copy)


def unchanged(inputs: Inputs, saved: list[tuple[str, Tensor, Any]], what: str, advice: str = "") -> None:
    """Fail (code in_place), naming the input, when the learner's call wrote into one of `inputs` (or replaced,
    added or removed an entry of a list the checker passed); code input_flags when it changed an input's
    requires_grad or .grad instead (`s.requires_grad_()` on the caller's own tensor, a backward() reaching it)."""
    now = dict(_entries(inputs))
    for name, copy, flags in saved:
        if name in now and _same(now[name], copy):
            _flags_unchanged(what, name, now[name], flags, advice)
            continue
        t = now.get(name)
        if name not in now or not isinstance(t, Tensor):
            seen = "removed it" if name not in now else f"replaced it with a {type(t).__name__}"
        elif t.shape == copy.shape and t.dtype == copy.dtype:
            seen = f"{int((t.detach() != copy.to(t.device)).sum())} of {copy.numel()} entries changed"
        else:
            seen = f"now {tuple(t.shape)} {t.dtype}, was {tuple(copy.shape)} {copy.dtype}"
        _in_place(what, name, seen, advice)
    if added := [name for name in now if name not in {n for n, *_ in saved}]:
        _in_place(what, added[0], "appended to the list", advice)


def _flags_unchanged(what: str, name: str, t: Tensor, flags: tuple[bool, Tensor | None], advice: str) -> None:
    requires_grad, grad = flags
    if t.requires_grad != requires_grad:
        seen = f"its requires_grad is now {t.requires_grad}, was {requires_grad}"
        cause = (
            "`x.requires_grad_()` (or x.requires_grad = True) sets the flag on the caller's tensor itself, and so "
            "does it on `s` after `s = x`, `sources = xs` or `for s in xs` (another name, not a copy): from then on "
            "the caller's tensor builds graphs and collects gradients. Make your own leaves: "
            "s = x.detach().clone().requires_grad_()"
            if t.requires_grad
            else "`x.requires_grad_(False)` or x.detach_() switches the caller's tensor off autograd itself: "
            "detach a copy instead (x.detach() returns a new tensor)"
        )
    elif (grad is None) != (t.grad is None) or (grad is not None and not torch.equal(t.grad.detach(), grad)):
        seen = "its .grad was filled or changed"
        cause = (
            "a backward() reached the caller's tensor and accumulated into its .grad (or .grad was assigned): "
            "differentiate with torch.autograd.grad(loss, inputs) instead, or on your own copies"
        )
    else:
        return
    fail(
        f"{what} changed its input `{name}` ({seen}); its values are unchanged",
        f"{cause}. The caller's inputs must come back as they were given" + advice,
        code="input_flags",
    )


def _in_place(what: str, name: str, seen: str, advice: str) -> None:
    fail(
        f"{what} changed its input `{name}` in place ({seen})",
        f"don't write into `{name.split('[')[0]}`: the caller still uses it (in the notebook, the model's own "
        "tensors). `x -= y`, `x *= y`, `x.mul_(y)`, `x[i] = ...` edit x itself, and so does `y = x; y -= z` "
        "(y is x under another name, not a copy): compute a new tensor (y = x - z) or start from x.clone()" + advice,
        code="in_place",
    )


def call_unchanged(fn: Callable, inputs: Inputs, what: str, advice: str = "") -> Any:
    """fn(*inputs.values()) on the checker's own tensors, then the in-place check."""
    saved = snapshot(inputs)
    out = fn(*inputs.values())
    unchanged(inputs, saved, what, advice)
    return out


# --------------------------------------------------------------------------------------------
# Randomness drawn inside a deterministic function; an extra value returned
# --------------------------------------------------------------------------------------------
def deterministic(fn: Callable, args: Inputs, out: Tensor, what: str, given: str) -> None:
    """Fail (code random_output) when fn(*args) on fresh copies of the same inputs differs from `out`: something
    inside draws random numbers (`given`: the random inputs the caller draws and passes)."""
    try:
        again = fn(*(v.detach().clone() if isinstance(v, Tensor) else v for v in args.values()))
        differs = not torch.allclose(torch.as_tensor(again).detach().to(out), out.detach(), 1e-5, 1e-6)
    except Exception:  # a probe that fails says nothing
        return
    if differs:
        fail(
            f"{what} returns other values when called twice on the same inputs: it is random",
            f"it must be a deterministic function of its inputs: use the {given} it is given (the caller draws "
            "them), don't draw new ones inside (torch.rand_like, torch.rand, torch.bernoulli, dropout)",
            code="random_output",
        )


def extra_value(out: Any, n: int, what: str, noun: str) -> None:
    """Fail (code extra_value) when `out` is a tuple or list holding, next to other values, the list of `n` tensors
    asked for (`return sources, loss`)."""
    is_list = lambda v: isinstance(v, list | tuple) and len(v) == n and all(isinstance(t, Tensor) for t in v)
    if isinstance(out, list | tuple) and not is_list(out) and (at := [i for i, v in enumerate(out) if is_list(v)]):
        kinds = ", ".join(type(v).__name__ for v in out)
        if len(at) > 1:  # several lists of n tensors: which one is meant is not for the checker to say
            fail(
                f"{what} returned {len(out)} values ({kinds}); {len(at)} of them are lists of {n} tensors",
                f"return one list of {n} tensors, the {noun} after the last step (a list kept per step, the history "
                "of the iterates, or several results returned together?)",
                code="extra_value",
            )
        fail(
            f"{what} returned {len(out)} values ({kinds}); item {at[0]} is a list of {n} tensors",
            f"return only the list of {noun} (an extra value was returned: `return {noun}`, not `return {noun}, loss`)",
            code="extra_value",
        )


# --------------------------------------------------------------------------------------------
# An elementwise size clash: an operand computed from another tensor than the one meant
# --------------------------------------------------------------------------------------------
def one_element(out: Any, what: str, right: Tensor | None = None) -> None:
    """Fail (code not_scalar) with the usual causes when `out` holds one number in a tensor with axes."""
    if not isinstance(out, Tensor) or out.ndim == 0 or out.numel() != 1:
        return
    same = right is not None and torch.allclose(out.detach().reshape(()).double(), right.double(), 1e-4, 1e-6)
    fail(
        f"{what} should be a scalar (0-dim) tensor, got shape {tuple(out.shape)}"
        + (" (its one value is right)" if same else ""),
        f"a shape {tuple(out.shape)} holds one number but keeps {out.ndim} axis{'es' if out.ndim > 1 else ''} of "
        "size 1: it usually comes from a [1]-shaped tensor at the start, an accumulator torch.zeros(1) or "
        "torch.tensor([0.]) that the terms are added into (start from 0., torch.zeros(()) or torch.tensor(0.)), "
        "or from keepdim=True, [None], .unsqueeze, .reshape(1) or .view(1); return the 0-dim value (.squeeze() "
        "also works)",
        code="not_scalar",
    )


# --------------------------------------------------------------------------------------------
# An output axis whose size is another input's
# --------------------------------------------------------------------------------------------
def sizes_named(out: Any, what: str, shape: tuple[int, ...], dims: str, sizes: dict[int, str]) -> None:
    """Fail (code axis_size) when `out` has the asked number of axes and each wrong size is the size of another
    input axis (`sizes`: size -> what has it; the checker's inputs have no two such sizes equal)."""
    if not isinstance(out, Tensor) or out.ndim != len(shape) or sorted(out.shape) == sorted(shape):
        return  # another number of axes, or the right sizes in another order: expect_tensor says so
    names = dims.split()
    wrong = [(names[i], s, g) for i, (s, g) in enumerate(zip(shape, out.shape, strict=True)) if s != g]
    if len(wrong) == 1 and abs(wrong[0][1] - wrong[0][2]) == 1 and wrong[0][2] not in sizes:  # K ± 1: no input's
        n, s, g = wrong[0]
        fail(
            f"{what} has shape {tuple(out.shape)}, expected {tuple(shape)} [{dims}]: axis {n} has size {g}, one "
            f"{'fewer' if g < s else 'more'} than {s}, {sizes.get(s, 'its size')} (no input has an axis of size {g})",
            f"an off-by-one: range(n - 1), range(1, n), a slice [:-1] / [1:] or n + 1 where range({s}) belongs",
            code="off_by_one",
        )
    if not wrong or any(g not in sizes or s not in sizes for _, s, g in wrong):
        return
    seen = "; ".join(f"axis {n} has size {g}, {sizes[g]}, where {s}, {sizes[s]}, belongs" for n, s, g in wrong)
    fail(
        f"{what} has shape {tuple(out.shape)}, expected {tuple(shape)} [{dims}]: {seen}",
        "a count taken from the wrong input axis: a loop or range over the size "
        + " / ".join(str(g) for _, _, g in wrong)
        + " (e.g. range(t.shape[0]) where range(t.shape[1]) belongs), or an axis of another tensor kept in the "
        "output? Take each output axis's size from the input axis the exercise names",
        code="axis_size",
    )


def ablation_sizes(chain: Any, terms: Tensor, x: Tensor) -> dict[int, str]:
    """Every size of ablation_losses' inputs -> what has it (all differ on the checker's inputs)."""
    n_inst, K, d_out, d_in = terms.shape
    pairs = [
        (n_inst, "the number of instances (terms.shape[0], x.shape[1], n_inst)"),
        (K, "the number of terms K (terms.shape[1])"),
        (x.shape[0], "the batch (x.shape[0])"),
        (d_out, "W_0's d_out (terms.shape[2])"),
        (d_in, "W_0's d_in (terms.shape[3], x.shape[2])"),
    ]
    pairs += [(W.shape[1], f"matrix {n}'s d_out") for n, W in enumerate(chain.weights[1:], 1)]
    sizes: dict[int, str] = {}
    for size, name in pairs:
        sizes[size] = f"{sizes[size]} and {name}" if size in sizes else name
    return sizes


# --------------------------------------------------------------------------------------------
# An instance's output that changes with another instance's inputs
# --------------------------------------------------------------------------------------------
def instance_mixing(fn: Callable, inputs: dict[str, tuple[Tensor, int]], out_axis: int) -> tuple[str, str] | None:
    """(code, hint) when instance i's output depends on instance j ≠ i's slice of an input (inputs: name ->
    (tensor, its instance axis)). fn is called again on copies that require grad; gradients of each instance's
    output (weighted by fixed random numbers, so nothing cancels) are read on the other instances' slices."""
    leaves = {k: t.detach().clone().requires_grad_() for k, (t, _) in inputs.items()}
    try:
        out = fn(*leaves.values())
        n_inst = out.shape[out_axis]
        weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(7)).to(out)
        found: dict[str, list[tuple[int, int]]] = {}
        for i in range(n_inst):
            total = (out.select(out_axis, i) * weights.select(out_axis, i)).sum()
            grads = torch.autograd.grad(total, list(leaves.values()), allow_unused=True, retain_graph=True)
            for (k, (_, axis)), g in zip(inputs.items(), grads, strict=True):
                for j in range(n_inst):
                    if j != i and g is not None and g.select(axis, j).abs().gt(1e-7).any():
                        found.setdefault(k, []).append((i, j))
    except Exception:  # a probe that fails says nothing
        return None
    if not found:
        return None
    i, j = next(iter(found.values()))[0]
    names = ", ".join(f"`{k}`" for k in found)
    return "mixes_instances", (
        f"instance {i}'s output changes with instance {j}'s {names}: every instance is its own model, so its output "
        "may only use its own slice. Something sums or mixes over the inst axis: an einsum whose output drops "
        "`inst` (e.g. 'ioc,icd->od' sums U V over the instances; keep inst: 'ioc,icd->iod' or U @ V), a matmul "
        "that pairs inst with another axis, a sum or mean over inst, or one instance's slice used for every instance "
        "(an index [0] that broadcasts)"
    )


# --------------------------------------------------------------------------------------------
# stochastic_reconstruction_losses: which inputs have the sizes of a size error
# --------------------------------------------------------------------------------------------
def call_naming_recon(fn: Callable, chain: Any, q: dict[str, list[Tensor]], x: Tensor) -> Any:
    """fn(chain, U, V, x, masks, delta_masks); a size error raised in the learner's code gets the inputs whose
    axes have the sizes it names, and the matrix the chain was running (the chain's sizes all differ)."""
    try:
        return fn(chain, q["U"], q["V"], x, q["masks"], q["delta_masks"])
    except (TypeError, IndexError) as err:
        layer_fn_order(err)
        raise
    except RuntimeError as err:
        layer_fn_order(err)
        frames = traceback.extract_tb(err.__traceback__)
        numbers = [int(n) for n in dict.fromkeys(_sizes(err))]
        if not numbers or not any(_is_learner_frame(f.filename) for f in frames):
            raise
        batch, n_inst, d0 = x.shape
        has: dict[int, list[str]] = {}
        add = lambda size, name: has.setdefault(size, []).append(name)
        add(batch, "the batch (x.shape[0])")
        add(n_inst, "the instances (x.shape[1])")
        add(d0, "the size of the chain's input x (x.shape[2] = matrix 0's d_in, V[0].shape[2])")
        for layer, W in enumerate(chain.weights):
            if layer > 0:
                add(W.shape[2], f"matrix {layer}'s d_in (V[{layer}].shape[2], the size of the `a` it multiplies)")
            add(W.shape[1], f"matrix {layer}'s d_out (U[{layer}].shape[1])")
        for layer, u in enumerate(q["U"]):
            add(
                u.shape[2],
                f"matrix {layer}'s subcomponents C (U[{layer}].shape[2], V[{layer}].shape[1], masks[{layer}])",
            )
        known = [n for n in numbers if n in has]
        if not known:
            raise
        if swap := _swapped_uv(err, q):
            raise CheckFailed(_describe_error(err).message, swap, code="swapped_uv") from None
        layer = _chain_layer(err)
        seen = "; ".join(f"{n} is {' and '.join(dict.fromkeys(has[n]))}" for n in known)
        hint = (f"the chain was running matrix l = {layer}; " if layer is not None else "") + f"the sizes: {seen}"
        if layer is not None and layer > 0 and d0 in known and chain.weights[layer].shape[2] in known:
            hint += (
                f". x's size {d0} met matrix {layer}'s d_in {chain.weights[layer].shape[2]}: was the chain's input x "
                f"passed at matrix {layer}? layer_fn(l, a) must use the activation `a` it is given, "
                "masked_product(a, ...), not x (x only enters matrix 0)"
            )
        raise CheckFailed(_describe_error(err).message, hint, code="input_sizes") from None


def _swapped_uv(err: BaseException, q: dict[str, list[Tensor]]) -> str:
    """A frame of the failing call that holds a `U` shaped like some V[l] and a `V` shaped like U[l]: the two
    were passed in each other's place (masked_product(a, W, V[l], U[l], ...))."""
    pairs = {(tuple(v.shape), tuple(u.shape)): n for n, (u, v) in enumerate(zip(q["U"], q["V"], strict=True))}
    tb = err.__traceback__
    while tb is not None:
        U, V = tb.tb_frame.f_locals.get("U"), tb.tb_frame.f_locals.get("V")
        if isinstance(U, Tensor) and isinstance(V, Tensor) and (key := (tuple(U.shape), tuple(V.shape))) in pairs:
            n = pairs[key]
            return (
                f"in {tb.tb_frame.f_code.co_name}, `U` has the shape of V[{n}] {list(U.shape)} and `V` that of "
                f"U[{n}] {list(V.shape)}: U and V were passed in each other's place. masked_product takes "
                "(a, W, U, V, mask, delta_mask): U [inst d_out C] goes back up, V [inst C d_in] reads a"
            )
        tb = tb.tb_next
    return ""


def call_unchanged_uv(fn: Callable, inputs: Inputs, what: str) -> Any:
    """call_unchanged, naming U and V swapped when the learner's error comes from a line where a local named like
    U (u, U_l, Ul, ...) has the shape of some V[l] and one named like V that of U[l] (zip(weights, U, V) unpacked
    as W, V_l, U_l)."""
    try:
        return call_unchanged(fn, inputs, what)
    except (RuntimeError, ValueError) as err:
        Us, Vs = [tuple(u.shape) for u in inputs["U"]], [tuple(v.shape) for v in inputs["V"]]
        tb = err.__traceback__
        while tb is not None:
            local = {k: v for k, v in tb.tb_frame.f_locals.items() if isinstance(v, Tensor)}
            u = [k for k, v in local.items() if k[:1] in "uU" and tuple(v.shape) in Vs and tuple(v.shape) not in Us]
            v = [k for k, t in local.items() if k[:1] in "vV" and tuple(t.shape) in Us and tuple(t.shape) not in Vs]
            if u and v:
                raise CheckFailed(
                    _describe_error(err).message,
                    f"on the failing line, `{u[0]}` has the shape of a V {list(local[u[0]].shape)} and `{v[0]}` that "
                    f"of a U {list(local[v[0]].shape)}: U and V are in each other's place (a zip(weights, U, V) "
                    "unpacked in another order?). U[l] is [inst d_out C], V[l] is [inst C d_in], and W ≈ U V",
                    code="swapped_uv",
                ) from None
            tb = tb.tb_next
        raise


def _sizes(err: BaseException) -> list[str]:
    """The sizes a size error names ("size 3", "(5)", "[6, 3, 5]"; not "dimension 2" or "operand 1")."""
    if not re.search(r"size|shape", str(err)):
        return []
    text = re.sub(r"\b(dimension|dim|operand|argument|index|position|axis) -?\d+", "", str(err))
    return re.findall(r"(?<![\w.])(\d+)(?![\w.])", re.sub(r"(\d)x(?=\d)", r"\1 ", text))  # 21x5: 21 and 5


# --------------------------------------------------------------------------------------------
# adversarial_sources: .grad read as None
# --------------------------------------------------------------------------------------------
def call_naming_grad_none(fn: Callable, *args: Any) -> Any:
    """fn(*args); an AttributeError on None raised on a learner's line that reads `.grad` says why .grad is
    None, and whether the tensor read is a leaf (it is not when it was computed outside torch.no_grad())."""
    try:
        return fn(*args)
    except RuntimeError as err:
        _first_for_every_source(err, args[1])
        raise
    except AttributeError as err:
        frame = failing_line(err)[0]
        line = next((f.line or "" for f in reversed(traceback.extract_tb(err.__traceback__))), "")
        read = re.search(r"([A-Za-z_]\w*)\.grad\b", line)
        if "'NoneType'" not in str(err) or frame is None or read is None:
            raise
        t = frame.f_locals.get(read[1])
        seen = ""
        if isinstance(t, Tensor) and t.grad_fn is not None:
            seen = (
                f" `{read[1]}` is not a leaf here (it has a grad_fn, {type(t.grad_fn).__name__}): it was computed "
                "from other tensors with autograd on, e.g. by an update made outside torch.no_grad()."
            )
        raise CheckFailed(
            _describe_error(err).message,
            f"`{read[1]}.grad` is None on that line ({line.strip()}).{seen} backward() fills .grad only on leaf "
            "tensors that require grad: a source updated with autograd on (s + step_size * ...) is a new, non-leaf "
            "tensor whose .grad stays None; or no backward() reached it. Update inside `with torch.no_grad():` "
            "(then .requires_grad_() again), or on s.data, or take the gradients with "
            "torch.autograd.grad(loss, sources)",
            code="grad_none",
        ) from None


def _first_for_every_source(err: RuntimeError, init: list[Tensor]) -> None:
    """A size error on a learner's line that indexes a list of per-source tensors with a constant (`grads[0]`)
    while another source's tensor is on that line: one source's gradient (or value) used for every source."""
    frame, line, _ = failing_line(err)
    if frame is None or not line or not re.search(r"size|shape", str(err)):
        return
    shapes = [tuple(t.shape) for t in init]
    for m in re.finditer(r"([A-Za-z_]\w*)\[(\d+)\]", line):
        seq, k = frame.f_locals.get(m[1]), int(m[2])
        if not isinstance(seq, list | tuple) or len(seq) != len(init) or k >= len(init):
            continue
        if [tuple(t.shape) if isinstance(t, Tensor) else None for t in seq] != shapes:
            continue
        other = next(
            (
                (name, n)
                for name, t in frame.f_locals.items()
                if isinstance(t, Tensor) and name != m[1]
                for n, shape in enumerate(shapes)
                if n != k and tuple(t.shape) == shape and shape != shapes[k]
            ),
            None,
        )
        if other is None:
            continue
        raise CheckFailed(
            _describe_error(err).message,
            f"on that line `{m[0]}` has source {k}'s shape {list(shapes[k])} while `{other[0]}` has source "
            f"{other[1]}'s {list(shapes[other[1]])}: `{m[1]}` holds one tensor per source, and `{m[0]}` uses source "
            f"{k}'s for every source. Pair each source with its own: for source, grad in zip(sources, {m[1]})",
            code="one_source_for_all",
        ) from None


def layer_fn_order(err: BaseException) -> None:
    """Fails naming the swap when the learner's layer_fn, called by the chain as layer_fn(l, a), declared its
    parameters the other way round: its second parameter (the activation tensor) used as an index on the failing
    line (`chain.weights[l]` with `l` holding a), or its first (the index) used where a tensor belongs."""
    frames = [(frame, line) for frame, line in traceback.walk_tb(err.__traceback__)]
    for n, (frame, _) in enumerate(frames[:-1]):
        if frame.f_code.co_name != "run" or type(frame.f_locals.get("self")).__name__ != "WeightChain":
            continue
        inner, at = frames[n + 1]
        code = inner.f_code
        if not _is_learner_frame(code.co_filename) or code.co_argcount < 2:
            return
        first, second = code.co_varnames[:2]
        index, act = inner.f_locals.get(first), inner.f_locals.get(second)
        failing = frames[-1]
        text = linecache.getline(failing[0].f_code.co_filename, failing[1]) if failing[0] is inner else ""
        text = text or linecache.getline(code.co_filename, at)
        if not isinstance(index, int) or not isinstance(act, Tensor):
            return
        if re.search(rf"\[\s*{second}\s*\]", text) or re.search(rf"\b{first}\b\s*[@*]|[@*]\s*\b{first}\b", text):
            fail(
                f"your code raised {type(err).__name__}: {err}",
                f"the chain calls layer_fn(l, a), the matrix index first and the activation second; your "
                f"layer_fn({first}, {second}, ...) names them the other way round, so `{second}` holds the activation "
                f"(a tensor of shape {list(act.shape)}) and `{first}` the index {index}: declare layer_fn({second}, "
                f"{first}) (index first)",
                code="layer_fn_order",
            )
        return


# --------------------------------------------------------------------------------------------
# The faithfulness loss: what each matrix's squared error is divided by
# --------------------------------------------------------------------------------------------
def _matrix_divisors(fn: Callable, weights: list[Tensor], U: list[Tensor], V: list[Tensor]) -> list[float] | None:
    """What the learner divides each matrix's squared error by, measured: called with every other matrix exact
    (W_l = U_l V_l, so its error is 0), the loss is matrix k's squared error (summed over instances) over it. None
    unless the error doubled, with random signs, gives 4 × the loss (a norm, an absolute value or a mean taken
    before the square is no divisor of the squared entries)."""
    out = []
    for k in range(len(weights)):
        signs = 2 * torch.randint(0, 2, weights[k].shape, generator=torch.Generator().manual_seed(k)) - 1
        value = []
        for scale in (1, 2 * signs.to(weights[k])):
            ws = [
                u @ v + (scale * (W - u @ v) if n == k else 0)
                for n, (W, u, v) in enumerate(zip(weights, U, V, strict=True))
            ]
            try:
                with torch.no_grad():
                    value.append(float(fn(ws, [u.clone() for u in U], [v.clone() for v in V])))
            except Exception:  # a probe that fails says nothing
                return None
        if not value[0] > 0 or abs(value[1] - 4 * value[0]) > 1e-4 * value[1]:
            return None
        out.append(float((weights[k] - U[k] @ V[k]).pow(2).sum()) / value[0])
    return out


def faithfulness_divisors(fn: Callable, loss: Tensor, weights: list[Tensor], U: list[Tensor], V: list[Tensor]):
    """(code, hint) when the learner's loss is Σ_l (squared error of W_l) / d_l with per-matrix divisors d_l that
    differ between the matrices (one N for all is right): each d_l fitted by a probe, named by that matrix's sizes
    when they all agree on one (its d_out, its d_in, its own entries), else listed. None when the loss isn't a
    per-matrix weighting (the fitted terms don't add up to the loss) or one divisor serves every matrix."""
    with torch.no_grad():
        d = _matrix_divisors(fn, weights, U, V)
        errors = [float((W - u @ v).pow(2).sum()) for W, u, v in zip(weights, U, V, strict=True)]
    if not d or not all(0 < x < float("inf") for x in d) or max(d) - min(d) <= 1e-4 * max(d):
        return None
    if abs(sum(e / x for e, x in zip(errors, d, strict=True)) - float(loss)) > 1e-4 * abs(float(loss)):
        return None  # not a per-matrix weighting of the squared errors (a square root, a norm, another mistake)
    n = sum(W[0].numel() for W in weights)
    sizes = {"d_out (W_l.shape[-2])": -2, "d_in (W_l.shape[-1])": -1}
    families = {name: [W.shape[axis] for W in weights] for name, axis in sizes.items()}
    families["own entries d_out·d_in (W_l[0].numel())"] = [W[0].numel() for W in weights]
    m = len(weights[0])  # a mean over the instances too
    families |= {f"{k} × the {m} instances": [m * c for c in v] for k, v in families.items()}
    named = [name for name, c in families.items() if all(abs(x - y) <= 1e-4 * y for x, y in zip(d, c, strict=True))]
    shown = ", ".join(f"{x:.4g}" for x in d)
    what = f"its own {named[0]}: {shown}" if named else f"a number of its own ({shown})"
    return "per_matrix_divisor", (
        f"your loss divides each matrix's squared error by {what}, where one N = {n} (the entries of every matrix "
        "of one instance together) belongs for all of them: a mean taken per matrix or over one axis (.mean(-1), "
        ".mean(-2), F.mse_loss on one matrix) instead of the sum of the squared entries of every matrix divided by N"
    )


# --------------------------------------------------------------------------------------------
# importance_minimality_loss: the matrices' C clash, read from the failing line
# --------------------------------------------------------------------------------------------
_REDUCTION = re.compile(
    r"\.(sum|mean)\(\s*(-?\d)\s*[,)]|\b(sum|mean)\((?:[^()]|\([^()]*\))*?\b(?:dim|axis)\s*=\s*(-?\d)"
)


def minimality_clash(batch: int, n_inst: int) -> Callable[[BaseException], str]:
    """The hint for an error where the matrices' numbers of subcomponents C clash: what on the failing line still
    carried a C axis into the combination of the matrices, when it shows (a reduction over another axis of the
    [batch inst C] importances, a local shaped [batch C] or [inst C], a stack or cat), else the usual causes listed."""
    axes = {0: "batch", 1: "inst", -2: "inst", -3: "batch"}
    rule = (
        "The penalty sums g^p over the matrices: Σ_l Σ_c (g_lc + eps)^p, each matrix's importances raised to the "
        "power p and summed over its own C (the last axis, .sum(-1)), then the matrices' terms added"
    )

    def hint(err: BaseException) -> str:
        frame, line, _ = failing_line(err)
        code = line.split("#")[0]
        seen = [
            f"`{call}` reduces the {axes[int(m[2] or m[4])]} axis of the [batch inst C] importances"
            for m in _REDUCTION.finditer(code)
            if int(m[2] or m[4]) in axes
            for call in [f".{m[1]}({m[2]})" if m[1] else f"{m[3]}(..., dim={m[4]})"]
        ]
        for name, t in frame.f_locals.items() if frame is not None else ():
            kept = {(batch,): "batch", (n_inst,): "inst"}.get(tuple(t.shape[:-1])) if isinstance(t, Tensor) else None
            if kept and name in code:
                seen.append(
                    f"`{name}` is [{kept} C] {list(t.shape)}: the {({'batch', 'inst'} - {kept}).pop()} axis reduced"
                )
        start = "the two sizes that clash are the matrices' numbers of subcomponents C (each matrix has its own)"
        if seen:
            return f"{start}; on that line {'; '.join(seen)}, so C is still there when the matrices meet. {rule}"
        if re.search(r"\b(cat|stack|concat|hstack|vstack)\b", code):
            return f"{start}: their importances can't be stacked or concatenated. {rule} (not (Σ_l g_l + eps)^p)"
        return (
            f"{start}: something that still has a C axis was combined across matrices: the importances added or "
            "stacked before the power ((Σ_l g_l + eps)^p), or each matrix's term reduced over another axis than C "
            f"(.sum(1) sums the instances and keeps C)? {rule}"
        )

    return hint
