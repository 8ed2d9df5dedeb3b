"""Loss checks of parts 1 and 2: which weights a wrong importance-weighted loss puts on each squared error.

A loss Σ_inst mean_(batch, feats) w · (target - out)² has the gradient 2 w (out - target) / (B · feats) with respect
to `out`, so the weight of every element can be read back from the gradient. `importance_table_relation` names the
weights when they are the importance changed in a way a learner writes:

* a factor per instance, w = c_inst · importance: the importance divided by its sum (a weighted average
  Σ I · err / Σ I), by its largest entry (per instance or overall), or the instances combined by a logsumexp (a
  softmax-weighted sum) where the plain sum belongs (one factor for the whole loss, 1 / importance.max(), is named
  with its twin, a constant on the loss such as ½, under the code `scale`);
* another [inst, feats] table: the importance reversed, rolled, accumulated (cumsum), one feature's or one instance's
  importance for all, a softmax of it, or the importance divided by a statistic of the target over the batch (its
  variance, mean square or standard deviation: a normalised MSE);
* weights that change from element to element: the importance divided by target² (+ ε) or |target| (+ ε), a relative
  error.

Each reading is exact (to float tolerance) on the check's generic inputs, so it names nothing by chance.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

RIGHT = (
    "the loss is Σ over instances of the mean over (batch, feats) of importance · (target - out)², with "
    "self.importance as it is"
)


def _close(a: Tensor, b: Tensor) -> bool:
    return a.shape == b.shape and bool(torch.allclose(a, b, rtol=1e-3, atol=1e-7 * (1 + float(b.abs().max()))))


def _tables(imp: Tensor, target: Tensor) -> list[tuple[str, str, Callable[[], Tensor]]]:
    """(code, what the learner wrote, its weight table) for [inst, feats] tables other than a factor per instance."""
    k, n = imp.shape
    spread = [
        (
            "importance_reordered",
            "importance.flip(-1): the features' importances in reverse order",
            lambda: imp.flip(-1),
        ),
        (
            "importance_reordered",
            "importance.flip(0): the instances' importances in reverse order",
            lambda: imp.flip(0),
        ),
        (
            "importance_reordered",
            "importance.roll(1, -1): each feature got its left neighbour's importance",
            lambda: imp.roll(1, -1),
        ),
        (
            "importance_reordered",
            "importance.roll(-1, -1): each feature got its right neighbour's importance",
            lambda: imp.roll(-1, -1),
        ),
        (
            "importance_accumulated",
            "importance.cumsum(-1): each feature weighted by the sum of its own and earlier features' importances",
            lambda: imp.cumsum(-1),
        ),
        ("importance_accumulated", "importance.cumsum(0): accumulated over the instances", lambda: imp.cumsum(0)),
        (
            "importance_one_entry",
            "importance[:, :1]: feature 0's importance used for every feature",
            lambda: imp[:, :1].expand(k, n),
        ),
        (
            "importance_one_entry",
            "importance[:, -1:]: the last feature's importance used for every feature",
            lambda: imp[:, -1:].expand(k, n),
        ),
        (
            "importance_one_entry",
            "importance[:1]: instance 0's importances used for every instance",
            lambda: imp[:1].expand(k, n),
        ),
        (
            "importance_one_entry",
            "importance.mean(0): the importances averaged over instances",
            lambda: imp.mean(0, keepdim=True).expand(k, n),
        ),
        ("importance_softmax", "softmax(importance, -1): a softmax of the importances", lambda: imp.softmax(-1)),
        (
            "importance_summed",
            "importance.sum(0): each feature's importance summed over the instances (an einsum whose instance letter "
            "differs between the operands, such as 'bif,jf->bi', sums over it)",
            lambda: imp.sum(0, keepdim=True).expand(k, n),
        ),
        (
            "importance_summed",
            "importance.sum(-1): each instance's importances summed over the features, for every feature (an einsum "
            "whose feature letter differs between the operands, such as 'bif,ig->bi', sums over it)",
            lambda: imp.sum(-1, keepdim=True).expand(k, n),
        ),
        ("importance_power", "importance²", lambda: imp**2),
    ]
    stats = [
        ("target.var(0) (its variance over the batch: a normalised MSE)", lambda: target.var(0)),
        (
            "target.var(0, unbiased=False) (its variance over the batch: a normalised MSE)",
            lambda: target.var(0, unbiased=False),
        ),
        ("target.std(0) (its standard deviation over the batch)", lambda: target.std(0)),
        ("(target²).mean(0) (its mean square over the batch: a normalised MSE)", lambda: (target**2).mean(0)),
        ("target.abs().mean(0) (its mean over the batch)", lambda: target.abs().mean(0)),
    ]
    for what, stat in stats:
        spread.append(("normalised_mse", f"importance divided by {what}", lambda stat=stat: imp / stat()))
    return spread


def _instance_factor(c: Tensor, imp: Tensor, per_inst_loss: Tensor) -> tuple[str, str] | None:
    """(code, what) a factor per instance c [inst] (weights c · importance) comes from, or None."""
    n = imp.shape[1]
    if bool((c - c.mean()).abs().max() <= 1e-4 * c.abs().max()):  # one factor for all: only the overall readings
        for what, factor in (
            (f"importance / importance.max() (its largest entry is {float(imp.max()):.3g})", 1 / imp.max()),
            ("importance / importance.sum() (divided by its sum over every instance and feature)", 1 / imp.sum()),
            (
                "one weighted average over every instance and feature, Σ I·err / Σ I (importance.sum() over all), "
                "where each instance's mean of importance · err is summed",
                n / imp.sum(),
            ),
            ("importance / importance.mean() (divided by its mean)", 1 / imp.mean()),
        ):
            if abs(float(c.mean() - factor)) <= 1e-4 * float(factor):
                k = float(c.mean())
                if any(abs(k * m - round(k * m)) < 1e-4 and round(k * m) > 0 for m in (1, 2, 3, 4)):
                    # A simple constant (½, 2, ...): a constant on the loss reads the same, so both are named.
                    return "scale", (
                        f"{k:.4g} × importance, which is {what}, or the right loss times a constant {k:.4g} (a ½ "
                        "convention such as ½·MSE, a term counted twice or lost)"
                    )
                code = "importance_weighted_average" if "weighted average" in what else "importance_normalised"
                return code, f"{k:.4g} × importance, which is {what}"
        return None
    candidates = [
        (
            "importance_normalised",
            "importance / importance.amax(-1, keepdim=True) (each instance's importances divided by its largest)",
            1 / imp.amax(-1),
        ),
        (
            "importance_normalised",
            "importance / importance.sum(-1, keepdim=True) (normalised to sum 1 per instance)",
            1 / imp.sum(-1),
        ),
        (
            "importance_weighted_average",
            "each instance's Σ importance · err divided by Σ importance, a weighted average over the features "
            "(Σ I·err / Σ I; the same weights as importance / importance.mean(-1, keepdim=True)), where the plain "
            "mean of importance · err belongs",
            n / imp.sum(-1),
        ),
        (
            "instances_logsumexp",
            "a softmax over the instances' losses: the instances combined with a logsumexp (or a softmax-weighted "
            "sum) where the plain sum belongs",
            per_inst_loss.softmax(0),
        ),
    ]
    for code, what, factor in candidates:
        if _close(c, factor):
            return code, what
    ratio = c * imp.sum(-1) / n  # a weighted average times a constant (a sum over the batch, another mean)
    if bool((ratio - ratio.mean()).abs().max() <= 1e-4 * ratio.abs().max()):
        return "importance_weighted_average", (
            f"each instance's importance-weighted error divided by the sum of its importances (a weighted average "
            f"Σ I·err / Σ I), times {float(ratio.mean()):.4g}"
        )
    return None


def importance_table_relation(grad: Tensor | None, out: Tensor, target: Tensor, imp: Tensor) -> tuple[str, str] | None:
    """(code, hint) when the gradient shows the squared errors weighted by a named change of the importance."""
    if grad is None or grad.shape != out.shape or out.dim() != 3 or imp.shape != out.shape[1:]:
        return None
    B, _, n = out.shape
    g, o = grad.detach().double().cpu(), out.detach().double().cpu()
    t, w_right = target.detach().double().cpu(), imp.detach().double().cpu()
    d = o - t
    ok = d.abs() > 1e-3
    if not bool(ok.any(0).all()) or not bool(torch.isfinite(g).all()):
        return None
    w = torch.where(ok, g * B * n / (2 * torch.where(ok, d, torch.ones_like(d))), torch.nan)
    cell = w.nanmean(0)
    if not bool((torch.where(ok, (w - cell).abs(), 0) <= 1e-4 * (1 + cell.abs())).all()):
        return _elementwise(w, ok, t, w_right)
    if _close(cell, w_right):
        return None
    found = None
    c = cell / w_right
    if bool(((c - c.mean(-1, keepdim=True)).abs() <= 1e-4 * (1 + c.abs())).all()):  # one factor per instance
        found = _instance_factor(c.mean(-1), w_right, (w_right * d**2).mean(dim=(0, 2)))
    if found is None:
        found = next(((code, what) for code, what, table in _tables(w_right, t) if _close(cell, table())), None)
    if found is None:
        return None
    return found[0], (
        f"the gradient with respect to `out` shows the squared errors weighted otherwise than by importance[inst, "
        f"feat]: by {found[1]}. {RIGHT[0].upper()}{RIGHT[1:]}"
    )


def _elementwise(w: Tensor, ok: Tensor, t: Tensor, w_right: Tensor) -> tuple[str, str] | None:
    """Weights that change along the batch: the importance divided by target² + ε or |target| + ε."""
    r = torch.where(ok, w_right / w, torch.nan)  # what each importance was divided by
    for what, stat in (("target²", t**2), ("|target|", t.abs())):
        eps = (r - stat).nanmedian()
        if float(eps) < -1e-9:
            continue
        dev = torch.where(ok, (r - stat - eps).abs(), 0)
        if bool((dev <= 1e-3 * (1 + r.abs().nan_to_num())).all()):
            plus = f" + {float(eps):.2g}" if float(eps) > 1e-12 else ""
            return "relative_error", (
                f"the gradient with respect to `out` shows each squared error divided by {what}{plus}: a relative "
                f"error (the error scaled by the target's size) where the plain squared error belongs. "
                f"{RIGHT[0].upper()}{RIGHT[1:]}"
            )
    return None
