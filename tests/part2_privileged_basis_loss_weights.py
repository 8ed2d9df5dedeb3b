"""Part 2's loss and presence-rate diagnoses built on the model's own tables (importance, feature_probability).

* `reduced_then_weighted_failure`: a loss returned with the importance table's shape [inst, feats] that is one number
  times the importance (e.g. `nn.MSELoss()(out, |x|) * self.importance`): the importance multiplied a loss already
  reduced to a scalar, so it came out with the table's shape. Named before the generic "not a scalar" failure.
* `rate_product_candidates`: presence-rate tables of a mask drawn against p multiplied or divided by the importance
  (capped at 1), for `check_rates`' candidate list.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from tests.checking import fail


def reduced_then_weighted_failure(
    calculate_loss: Callable, imp: Tensor, make_batch: Callable, target_of: Callable, device: torch.device
) -> None:
    """Call calculate_loss on a probe of its own (copies: the real check follows with its in-place checks); fail when
    the result has imp's shape and equals c · imp for one number c."""
    n_inst, n_feats = imp.shape
    batch = make_batch(7, n_inst, n_feats)
    out = torch.rand(7, n_inst, n_feats, device=device) * 1.7 - 0.2
    try:
        loss = calculate_loss(out.clone(), batch.clone())
    except Exception:  # the real check reports errors with its own diagnosis
        return
    if not isinstance(loss, Tensor) or tuple(loss.shape) != tuple(imp.shape) or loss.device.type == "meta":
        return
    ratio = loss.detach().double().cpu() / imp.double().cpu()
    c = float(ratio.mean())
    if not bool(((ratio - c).abs() <= 1e-4 * (1 + abs(c))).all()):
        return
    err = (target_of(batch) - out).double().cpu() ** 2
    mse = float(err.mean())
    what = (
        f" = the mean squared error over every axis ({mse:.4g}), as nn.MSELoss() / F.mse_loss return by default"
        if abs(c - mse) <= 1e-4 * (1 + mse)
        else ""
    )
    fail(
        f"calculate_loss(out, batch) returned shape {tuple(loss.shape)}, the importance table's shape, and equals "
        f"self.importance times one number {c:.4g}{what}",
        "the importance multiplied a loss already reduced to one number (nn.MSELoss() / F.mse_loss reduce with "
        "reduction='mean' by default, then `* self.importance` broadcasts it back to [inst, feats]): weight each "
        "squared error first, then reduce: (self.importance * (batch.abs() - out) ** 2).mean((0, 2)).sum()",
        code="importance_after_reduction",
    )


def rate_product_candidates(p: Tensor, imp: Tensor) -> list[tuple[str, str, Tensor]]:
    """Rate tables of a presence mask drawn against p × importance or p / importance (each capped at 1)."""
    p, imp = p.double(), imp.double()
    hint = (
        "the rates are feature_probability {} self.importance (capped at 1): the presence mask is drawn against "
        "that product; the importance weights the loss only, so draw presence as rand < self.feature_probability"
    )
    return [
        ("presence_times_importance", hint.format("×"), (p * imp).clamp(0, 1)),
        ("presence_times_importance", hint.format("÷"), (p / imp).clamp(0, 1)),
    ]
