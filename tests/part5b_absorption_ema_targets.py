"""BatchTopKToySAE.encode's threshold update: EMA weights and targets next to `threshold_candidates`' catalogue
(tests/part5b_absorption_mistakes.py), each the right per-instance update with one thing changed:

* the momentum left off one side of the step: (1 - m)·threshold + min_kept (the new value unweighted, a step that
  moves the threshold towards min_kept / m) or threshold + m·min_kept (the old value never decays);
* an instance that kept nothing positive reset to 0 instead of keeping its threshold (a step towards 0 there is
  `cut_value_candidates`' reading);
* the target read from the wrong activations: the average of each latent's smallest kept activation, or the largest
  activation batch_topk DROPPED (the (k·batch + 1)-th largest relu(pre)), a value from outside the kept ones.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["ema_target_candidates"]


def ema_target_candidates(
    th: Tensor, acts: Tensor, m: float, pre: Tensor | None = None
) -> list[tuple[str, str, Tensor]]:
    """(code, hint, threshold after the call) for each reading above; `acts` are the kept activations of the call,
    `pre` the ReLU'd pre-activations they were kept from."""
    positive = acts > 0
    has_any = positive.any(2).any(0)  # [inst]
    min_kept = torch.where(has_any, torch.where(positive, acts, torch.inf).amin(dim=(0, 2)), th)
    right = torch.where(has_any, th + m * (min_kept - th), th)
    step = "threshold + THRESHOLD_MOMENTUM · (min_kept - threshold) = (1 - m)·threshold + m·min_kept"
    out = [
        (
            "ema_new_unweighted",
            f"your update is (1 - m)·threshold + min_kept: THRESHOLD_MOMENTUM is missing on the new value, so the "
            f"threshold heads for min_kept / m (100 times too far); the step is {step}",
            torch.where(has_any, (1 - m) * th + min_kept, th),
        ),
        (
            "ema_old_unweighted",
            f"your update is threshold + m·min_kept: the old value is never decayed (its weight is 1, not 1 - m), so "
            f"the threshold only grows; the step is {step}",
            torch.where(has_any, th + m * min_kept, th),
        ),
    ]
    if not bool(has_any.all()):
        silent = (~has_any).nonzero().flatten().tolist()
        out.append(
            (
                "threshold_reset",
                f"instance(s) {silent} kept nothing positive and your threshold there became 0: an instance that kept "
                "nothing positive in the batch keeps its threshold as it is, not reset (torch.where(has_any, updated, "
                "self.threshold))",
                torch.where(has_any, right, torch.zeros_like(th)),
            )
        )
    per_latent = torch.where(positive, acts, torch.inf).amin(0)  # [inst d_sae]
    finite = torch.isfinite(per_latent)
    latent_mean = torch.where(finite, per_latent, 0.0).sum(-1) / finite.sum(-1).clamp_min(1)
    out.append(
        (
            "threshold_latent_mins",
            "your target is the AVERAGE over latents of each latent's smallest kept activation (amin over the batch, "
            "then a mean): take one minimum per instance over the batch and the latents together, amin(dim=(0, 2))",
            torch.where(has_any, th + m * (latent_mean - th), th),
        )
    )
    if pre is not None:
        dropped = (acts == 0) & (pre > 0)
        has_dropped = dropped.any(2).any(0)
        top_dropped = torch.where(dropped, pre, -torch.inf).amax(dim=(0, 2))
        out.append(
            (
                "threshold_largest_dropped",
                "your target is the LARGEST activation batch_topk dropped (the (k·batch + 1)-th largest relu(pre)), "
                "just below the cut: the target is the smallest activation it KEPT, torch.where(acts > 0, acts, "
                "inf).amin(dim=(0, 2))",
                torch.where(has_dropped, th + m * (torch.where(has_dropped, top_dropped, th) - th), th),
            )
        )
    return out
