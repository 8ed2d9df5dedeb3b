"""matryoshka_loss and batch_topk readings of what a prefix is compared with, or what one cut is: the prefix
reconstructions summed before one loss (against len(prefix_sizes)·h), each prefix compared with the previous
prefix's reconstruction instead of h, instance 0's decoder used for every instance, and batch_topk cutting every
instance at one shared value."""

from __future__ import annotations

import torch
from torch import Tensor

from tests.checking import fail

_PREFIX_FIX = (
    "each prefix's own loss against h, then the sum: Σ_m mean over d_in of (acts[..., :m] · W_dec[:, :m] + b_dec - h)²"
)


def target_slips(acts: Tensor, W: Tensor, b: Tensor, h: Tensor, sizes: tuple[int, ...]) -> list:
    """(code, hint, value) rows for the matryoshka_loss catalogue (only where there are two prefixes or more)."""
    if len(sizes) < 2:
        return []
    recs = [torch.einsum("bis,isd->bid", acts[..., :m], W[:, :m]) + b for m in sizes]
    previous = [h, *recs[:-1]]
    first = [torch.einsum("bis,sd->bid", acts[..., :m], W[0, :m]) + b for m in sizes]
    rows = []
    if W.shape[0] > 1:
        rows.append(
            (
                "decoder_first_instance",
                "every instance is decoded with instance 0's decoder (W_dec[0, :m] for all): each instance has its "
                f"own, W_dec[:, :m] (keep the instance axis in the einsum). {_PREFIX_FIX}",
                sum((r - h).pow(2).mean(-1) for r in first),
            )
        )
    return [
        *rows,
        (
            "reconstructions_summed",
            "that is ONE loss of the prefix reconstructions summed first, mean over d_in of (Σ_m rec_m - "
            f"len(prefix_sizes)·h)²: the errors of different prefixes cancel inside the square. {_PREFIX_FIX}",
            (sum(recs) - len(sizes) * h).pow(2).mean(-1),
        ),
        (
            "previous_prefix_target",
            "that compares each prefix's reconstruction with the PREVIOUS prefix's reconstruction (the first with "
            f"h): every prefix is compared with h itself. {_PREFIX_FIX}",
            sum((r - t).pow(2).mean(-1) for r, t in zip(recs, previous, strict=True)),
        ),
    ]


def shared_cut_failure(out: Tensor, pre: Tensor, k: int, what: str) -> None:
    """out keeps pre's values exactly where pre >= c for ONE value c for every instance (not each instance's own
    k·batch-th largest): the cut was reduced over the instances too (e.g. top.values.min() with no dim)."""
    batch, n_inst, _ = pre.shape
    o, p = out.detach(), pre.detach()
    kept = o != 0
    if n_inst < 2 or kept.all() or not kept.any() or not torch.equal(o[kept], p[kept]):
        return
    lo, hi = p[kept].min(), p[~kept].max()
    if not bool(hi < lo):
        return
    flat = p.transpose(0, 1).reshape(n_inst, -1)
    cuts = flat.topk(k * batch, dim=-1).values[:, -1]  # each instance's own k·batch-th largest
    counts = kept.transpose(0, 1).reshape(n_inst, -1).sum(-1).tolist()
    if torch.isclose(lo, cuts.min()):
        which = "the smallest of the instances' k·batch-th largest values (a min over every instance)"
    elif torch.isclose(lo, cuts.max()):
        which = "the largest of the instances' k·batch-th largest values (a max over every instance)"
    else:
        which = "a value shared by every instance"
    fail(
        f"{what} cuts every instance at the same value {float(lo):.4g}, {which}: it keeps {counts} entries per "
        f"instance, expected k·batch = {k * batch} each",
        "each instance has its own cut, its own k·batch-th largest value: reduce over that instance's "
        "[batch·d_sae] entries only (e.g. top.values[:, -1:], keepdim), not over all instances (top.values.min() "
        "with no dim)",
        code="cut_shared_over_instances",
    )
