"""Relations that name a wrong forward pass, loss or combined batch of part 1 that no catalogue entry lists.

* `reduction_relation`: the importance-weighted loss recomputed with every common reduction on each axis (mean, sum,
  max, min, median over `batch` and `feats`; sum, mean, max over instances), with or without a square root after
  each reduction (a norm where the squared error belongs), on the error squared or not, weighted or not. A scalar
  can match one of thousands of formulas by chance, so a formula is named only when the gradient of the learner's
  loss with respect to `out` (a [batch inst feats] fingerprint) matches that formula's gradient too.
* `weight_table_relation`: the gradient shows each squared error weighted by importance × T, with T a per-(inst,
  feat) table; T is named when it is one of the model's other tensors (feature_probability, 1 - p, ...).
* `model_tensor_mutants`: the forward pass and the loss with the model's feature_probability (or a ReLU on W) where
  it has no place, for the catalogue.
* `autograd_escape_reading`: a loss with no gradient told apart by the torch calls it makes (autograd switched off,
  a .detach(), .item() or numpy).
* `cat_instances_failure`: torch.cat of the combined batch failing because one block has fewer instances than the
  model: its probabilities were sliced along the instance axis.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable

import torch
from torch import Tensor
from torch.overrides import TorchFunctionMode

from tests.checking import fail
from tests.loss_penalties import difference_relation  # noqa: F401  (part 1's loss relations, one place)
from tests.loss_square_of_mean import square_of_mean_relation  # noqa: F401

_OPS: dict[str, Callable[[Tensor, int], Tensor]] = {
    "mean": lambda t, d: t.mean(d),
    "sum": lambda t, d: t.sum(d),
    "max": lambda t, d: t.amax(d),
    "min": lambda t, d: t.amin(d),
    "median": lambda t, d: t.median(d).values,
}
_SYMBOL = {"mean": "mean", "sum": "Σ", "max": "max", "min": "min", "median": "median"}
_INST_OPS = ("sum", "mean", "max")
# (formula of the error, what differs from importance · (target - out)², the error from d = target - out)
_BASES: tuple[tuple[str, str, Callable[[Tensor, Tensor], Tensor]], ...] = (
    ("importance · (target - out)²", "", lambda d, w: w * d**2),
    (
        "importance · |target - out|",
        "the error is not squared (|target - out| where (target - out)² belongs)",
        lambda d, w: w * d.abs(),
    ),
    (
        "(importance · (target - out))²",
        "the importance is inside the square (importance · (target - out))², where it multiplies the squared error",
        lambda d, w: (w * d) ** 2,
    ),
    ("(target - out)²", "no importance weight (self.importance[inst, feat] multiplies each error)", lambda d, w: d**2),
)
RIGHT_LOSS = "Σ over instances of the mean over (batch, feats) of importance · (target - out)²"


def _evaluate(spec: tuple, out: Tensor, target: Tensor, imp: Tensor) -> Tensor:
    base, first, op1, root1, op2, root2, inst_op, root3 = spec
    e = _BASES[base][2](target - out, imp)  # [batch inst feats]
    if first == "batch":
        e = _OPS[op1](e, 0)  # [inst feats]
        e = e.sqrt() if root1 else e
        e = _OPS[op2](e, 1)  # [inst]
    else:
        e = _OPS[op1](e, 2)  # [batch inst]
        e = e.sqrt() if root1 else e
        e = _OPS[op2](e, 0)  # [inst]
    e = e.sqrt() if root2 else e
    e = _OPS[inst_op](e, 0)
    return e.sqrt() if root3 else e


def _specs():
    for base, first, op1, root1, op2, root2, inst_op, root3 in itertools.product(
        range(len(_BASES)), ("batch", "feats"), _OPS, (False, True), _OPS, (False, True), _INST_OPS, (False, True)
    ):
        linear = {op1, op2} <= {"mean", "sum"} or (op1 == op2 and op1 in ("max", "min"))
        if first == "feats" and linear and not root1:
            continue  # the same formula as reducing `batch` first
        yield base, first, op1, root1, op2, root2, inst_op, root3


def _formula(spec: tuple) -> str:
    base, first, op1, root1, op2, root2, inst_op, root3 = spec
    second = "feats" if first == "batch" else "batch"
    text = f"{_SYMBOL[op1]}_{first} {_BASES[base][0]}"
    text = f"√({text})" if root1 else text
    text = f"{_SYMBOL[op2]}_{second} {text}"
    text = f"√({text})" if root2 else text
    text = f"{_SYMBOL[inst_op]}_inst {text}"
    return f"√({text})" if root3 else text


def _differences(spec: tuple) -> list[str]:
    base, first, op1, root1, op2, root2, inst_op, root3 = spec
    second = "feats" if first == "batch" else "batch"
    diffs = [_BASES[base][1]] if base else []
    for axis, op in ((first, op1), (second, op2)):
        if op != "mean":
            diffs.append(f"a {op} over `{axis}` where the mean belongs")
    norm = "(a norm such as .norm() or torch.linalg.norm is √(Σ x²); the loss averages the squares, with no root)"
    if root1:
        diffs.append(f"a square root after the {op1} over `{first}` {norm}")
    if root2:
        diffs.append(f"a square root after the {op2} over `{second}` {norm}")
    if inst_op != "sum":
        diffs.append(f"a {inst_op} over instances where the sum belongs (each instance is its own model)")
    if root3:
        diffs.append("a square root of the whole loss (a root-mean-square error, not the mean squared error)")
    return diffs


def reduction_relation(
    loss: Tensor, grad: Tensor | None, out: Tensor, target: Tensor, imp: Tensor
) -> tuple[str, str] | None:
    """(code, hint) when the learner's scalar loss and its gradient are those of the loss with other reductions, a
    root or another error (see the module docstring); None when none fits both, or the gradient is unknown."""
    if grad is None or loss.numel() != 1 or loss.device.type == "meta":
        return None
    value = float(loss.detach().double().cpu())
    o, t, w = out.detach().double().cpu(), target.detach().double().cpu(), imp.detach().double().cpu()
    right = float(_evaluate((0, "batch", "mean", False, "mean", False, "sum", False), o, t, w))
    close = lambda a, b, r=1e-4: abs(a - b) <= 1e-5 + r * abs(b)
    if close(value, right):
        return None
    found: dict[str, tuple] = {}
    with torch.no_grad():
        for spec in _specs():
            v = float(_evaluate(spec, o, t, w))
            if close(value, v) and not close(v, right):
                found.setdefault(_formula(spec), spec)
    g = grad.detach().double().cpu()
    confirmed = []
    for formula, spec in found.items():
        y = o.clone().requires_grad_()
        (gy,) = torch.autograd.grad(_evaluate(spec, y, t, w), y)
        if torch.allclose(g, gy, rtol=1e-3, atol=1e-6 * (1 + float(gy.abs().max()))):
            confirmed.append(f"{formula}: {'; '.join(_differences(spec))}")
    if not confirmed:
        return _scaled_root_relation(value, g, o, t, w)
    found_text = confirmed[0] if len(confirmed) == 1 else "one of: " + " | or | ".join(confirmed)
    return "loss_reduction", (
        f"your loss and its gradient with respect to `out` are those of {found_text}. The loss is {RIGHT_LOSS}"
    )


def _scaled_root_relation(value: float, g: Tensor, o: Tensor, t: Tensor, w: Tensor) -> tuple[str, str] | None:
    """The loss is Σ_inst c · √m_k, m_k the right per-instance mean: its gradient is the right one times a factor per
    instance, c / (2 √m_k), read back from the gradient and confirmed by the value (a norm where its square belongs,
    scaled by a constant, e.g. divided by B · F)."""
    B, F = o.shape[0], o.shape[2]
    m = (w * (t - o) ** 2).mean(dim=(0, 2))  # [inst]
    gr = 2 * w * (o - t) / (B * F)
    if not bool((m > 1e-9).all()) or not bool((gr.abs() > 1e-9).all()):
        return None
    r = (g / gr).median(0).values.median(-1).values  # [inst]: one factor per instance
    if not torch.allclose(g, r[None, :, None] * gr, rtol=1e-3, atol=1e-9) or torch.allclose(r, r.mean().expand_as(r)):
        return None
    c = 2 * r * m.sqrt()
    c0 = float(c.mean())
    if not torch.allclose(c, torch.full_like(c, c0), rtol=1e-3) or abs(value - c0 * float(m.sqrt().sum())) > 1e-3 * abs(
        value
    ):
        return None
    known = {1.0: "", (B * F) ** -0.5: " (1/√(B·F): a norm over (batch, feats) divided by B·F)"}
    known[(B * F) ** 0.5] = " (√(B·F): a norm over (batch, feats), not divided)"
    factor = next((f"{c0:.3g}{why}" for k, why in known.items() if abs(c0 - k) <= 1e-3 * k), f"{c0:.3g}")
    return "loss_root", (
        f"your loss and its gradient are those of Σ_inst {factor} · √(mean over (batch, feats) of importance · "
        "(target - out)²): a square root per instance, as a norm gives (.norm(), torch.linalg.norm or vector_norm is "
        f"√(Σ x²)). The loss is {RIGHT_LOSS}, with no root"
    )


def weight_table_relation(
    grad: Tensor | None, out: Tensor, target: Tensor, imp: Tensor, tables: dict[str, Tensor]
) -> tuple[str, str] | None:
    """(code, hint) when the gradient is that of Σ_inst mean importance · T · (target - out)² with T one of `tables`
    (name -> [inst feats]) other than all ones: the squared errors weighted by importance × that table."""
    if grad is None or grad.shape != out.shape:
        return None
    n_avg = out.shape[0] * out.shape[2]
    g, d = grad.detach().double().cpu(), (out - target).detach().double().cpu()
    ok = d.abs() > 1e-3
    w = torch.where(ok, g * n_avg / (2 * torch.where(ok, d, torch.ones_like(d))), torch.nan)
    cell = w.nanmean(0)
    if not bool(ok.any(0).all()) or not bool((torch.where(ok, (w - cell).abs(), 0) <= 1e-4 * (1 + cell.abs())).all()):
        return None
    factor = cell / imp.detach().double().cpu()
    for name, table in tables.items():
        table = table.detach().double().cpu()
        if not torch.allclose(table, torch.ones_like(table)) and torch.allclose(factor, table, rtol=1e-3, atol=1e-6):
            return "loss_weight_factor", (
                f"the gradient with respect to `out` shows each squared error weighted by importance × {name}: the "
                f"weights are self.importance alone ({name} has no place in the loss: feature_probability sets how "
                "often generate_batch draws a feature, so its effect is already in the data)"
            )
    return None


def model_tensor_mutants(out: Tensor, target: Tensor, imp: Tensor, p: Tensor) -> list[tuple[str, str, Tensor]]:
    """The loss with feature_probability (or 1 - p) multiplying the importance weights."""
    hint = (
        "your loss weights each squared error by importance × {}: the weights are self.importance alone "
        "(feature_probability sets how often generate_batch draws a feature, so its effect is already in the data)"
    )
    err = (target - out) ** 2
    return [
        ("loss_weight_factor", hint.format("feature_probability"), (imp * p * err).mean(dim=(0, 2)).sum()),
        ("loss_weight_factor", hint.format("(1 - feature_probability)"), (imp * (1 - p) * err).mean(dim=(0, 2)).sum()),
        *_slice_and_mask_mutants(out, target, imp),
    ]


def _slice_and_mask_mutants(out: Tensor, target: Tensor, imp: Tensor) -> list[tuple[str, str, Tensor]]:
    """The target of example 0 (batch[0]) compared with every example's output, and the errors kept only where the
    output is positive (a mask out > 0, as if a dead output needed no error)."""
    first = (imp * (target[:1] - out) ** 2).mean(dim=(0, 2)).sum()
    alive = (imp * (target - out) ** 2 * (out > 0)).mean(dim=(0, 2)).sum()
    return [
        (
            "first_example_target",
            "your loss compares every example's output with the target of example 0 (batch[0] broadcast over the "
            "batch): each example's output is compared with its own target, (target - out) with both [batch inst "
            "feats]",
            first,
        ),
        (
            "dead_outputs_dropped",
            "your loss keeps the errors only where out > 0 (a mask such as (out > 0)): an output at or below 0 where "
            "the target is positive is an error too, and the mean over batch and feats counts every entry",
            alive,
        ),
    ]


def present_mean_mutants(out: Tensor, batch: Tensor, imp: Tensor, target: Tensor) -> list[tuple[str, str, Tensor]]:
    """The loss averaged over the present entries only (batch != 0) where the mean over all belongs, in its usual
    forms: one mean over every present entry, a mean per instance (or per feature) over its present entries, or
    the whole sum divided by the number present; and the absent entries' errors dropped from a mean over all."""
    err = imp * (target - out) ** 2
    m = (batch != 0).to(err.dtype)
    kept = err * m
    hint = (
        "your loss averages over the present entries only (batch != 0), {}: take the mean over all of batch and "
        "feats, absent features included (their target is 0, and out there should be 0 too: that is what the "
        "model has to learn), then sum over instances"
    )
    return [
        ("mean_over_present", hint.format("one mean over every present entry"), kept.sum() / m.sum()),
        ("mean_over_present", hint.format("per instance"), (kept.sum((0, 2)) / m.sum((0, 2))).sum()),
        ("mean_over_present", hint.format("per instance"), (kept.sum((0, 2)) / m.sum((0, 2))).mean()),
        ("mean_over_present", hint.format("per feature"), (kept.sum(0) / m.sum(0)).mean(-1).sum()),
        ("mean_over_present", hint.format("every error divided by the number present"), err.sum() / m.sum()),
        (
            "mean_over_present",
            hint.format("every error divided by the number present"),
            (err.sum((0, 2)) / m.sum((0, 2))).sum(),
        ),
        (
            "absent_errors_dropped",
            "your loss leaves out the errors of absent features (batch == 0): their target is 0 and out there "
            "should be 0 too, so they count in the mean over all of batch and feats",
            kept.mean(dim=(0, 2)).sum(),
        ),
    ]


def forward_tensor_mutants(
    x: Tensor, W: Tensor, b: Tensor, p: Tensor, two_layer: Callable[..., Tensor]
) -> list[tuple[str, str, Tensor]]:
    """The forward pass with feature_probability multiplying its input or output, and with a ReLU on W itself."""
    no_p = (
        "feature_probability sets how often generate_batch draws a feature: the forward pass is ReLU(WᵀWx + b), "
        "with no feature_probability in it"
    )
    relu_w = torch.relu(W)
    return [
        ("forward_feature_probability", no_p, two_layer(x * p, W, W, b)),
        ("forward_feature_probability", no_p, two_layer(x, W, W, b) * p),
        (
            "relu_on_weights",
            "a ReLU is applied to W itself (ReLU(W) in the products), which zeroes its negative entries: the only "
            "ReLU is the output one, ReLU(WᵀWx + b_final), with W as it is",
            two_layer(x, relu_w, relu_w, b),
        ),
    ]


_CAT_SIZES = re.compile(r"Expected size (\d+) but got size (\d+) for tensor number (\d+)")


def cat_instances_failure(
    err: Exception, what: str, n_inst: int, n_batch: int, block_sizes: tuple[int, ...] = ()
) -> None:
    """Fail naming the instance axis when torch.cat of the blocks failed because one block has another number of
    instances than the model's n_inst (and the batch size is not the one that differs): the probabilities handed to
    that block were sliced along the instance axis (p[::2], p[:, a:b][::2] or p[a:b]), not along the features."""
    match = _CAT_SIZES.search(str(err))
    if not match:
        return
    first, other, index = (int(g) for g in match.groups())
    if n_inst not in (first, other) or first == other or n_batch in (first, other):
        return
    odd, position = (first, 0) if first != n_inst else (other, index)
    if position < len(block_sizes) and odd == block_sizes[position] > n_inst:  # slicing instances only shrinks
        names = ("correlated", "anticorrelated", "uncorrelated")
        fail(
            f"{what} raised {type(err).__name__}: {err}",
            f"block {position} in the list (counting from 0, the {names[position]} block) has {odd} on the "
            f"instance axis, its own number of {'features' if position == 2 else 'pairs'}, where n_inst = {n_inst} "
            "belongs: its generator got its probabilities as [features, inst], p's axes swapped (a slice of p.T not "
            "transposed back with .T, or a transpose too many?). Each generator takes p[:, ...] of shape [inst, ...]",
            code="p_transposed_block",
        )
    if odd > n_inst:
        return
    steps = [s for s in range(2, n_inst) if len(range(0, n_inst, s)) == odd]
    how = f": what a step ::{steps[0]} on the instance axis keeps of {n_inst}" if steps else ""
    fail(
        f"{what} raised {type(err).__name__}: {err}",
        f"block {position} in the list (counting from 0) has {odd} instance{'s' if odd != 1 else ''} where the model "
        f"has n_inst = {n_inst}{how}. The probabilities passed to its generator were sliced along the instance "
        "axis, e.g. p[:, a:b][::2] or p[a:b:2], where the slice belongs on the feature axis: p[:, a:b:2]. Each "
        "generator gets p[:, ...] with all the instances",
        code="p_sliced_instances",
    )


class _GradModeLog(TorchFunctionMode):
    """Records every torch call made under it: its name, and whether autograd was on when it ran."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, bool]] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.calls.append((getattr(func, "__name__", str(func)), torch.is_grad_enabled()))
        return func(*args, **(kwargs or {}))


_ESCAPES = (  # (torch call names, what was seen, the fix)
    (("detach", "detach_"), "calls .detach()", "drop the .detach() (on `out` or on the error)"),
    (("item", "tolist", "numpy"), "calls .item(), .tolist() or .numpy()", "keep everything a torch tensor"),
)


def autograd_escape_reading(compute: Callable[[], object]) -> tuple[str, str]:
    """(what was seen, hint) for a loss that does not depend on `out` through autograd, from the torch calls that
    `compute()` (the learner's loss on `out`) makes: calls run with autograd off (torch.no_grad(), inference_mode,
    set_grad_enabled(False)) are told apart from a .detach() and from leaving torch (.item(), numpy)."""
    log = _GradModeLog()
    try:
        with log:
            compute()
    except Exception:  # the learner's code has been called already: its own failure is reported there
        pass
    if log.calls and any(not on for _, on in log.calls):
        off = sum(not on for _, on in log.calls)
        return (
            f" (your calculate_loss ran {off} of its {len(log.calls)} torch operations with autograd switched off)",
            "don't compute the loss inside torch.no_grad() (or torch.inference_mode(), set_grad_enabled(False)): "
            "the optimizer needs its gradient; compute it with autograd on",
        )
    names = {name for name, _ in log.calls}
    for calls, seen, fix in _ESCAPES:
        if names & set(calls):
            return f" (your calculate_loss {seen})", f"{fix}: the loss must stay connected to `out`"
    return (
        "",
        "compute it with torch operations on `out` (no .item(), .detach(), torch.no_grad(), torch.tensor(...) or "
        "numpy)",
    )


def one_sided_mutants(out: Tensor, target: Tensor, imp: Tensor) -> list[tuple[str, str, Tensor]]:
    """The squared error kept on one side only: (target - out).clamp(min=0) (F.relu(batch - out)) or the other way."""
    hint = (
        "only {} is penalised ({}, squared): the loss squares the error in both directions, (target - out)², "
        "weighted by the importance"
    )
    return [
        (
            "one_sided_error",
            hint.format("under-prediction (out below the target)", "F.relu(target - out) or .clamp(min=0)"),
            (imp * (target - out).clamp(min=0) ** 2).mean(dim=(0, 2)).sum(),
        ),
        (
            "one_sided_error",
            hint.format("over-prediction (out above the target)", "F.relu(out - target)"),
            (imp * (out - target).clamp(min=0) ** 2).mean(dim=(0, 2)).sum(),
        ),
    ]
