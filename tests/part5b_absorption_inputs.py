"""part5b checks on the inputs a call was given and on boundaries of the contract: batch_topk's `pre` left as it was
(an in-place edit), the full budget k = d_sae (every entry kept), and absorption_fraction's carrier "active" read
against a level other than 0 (the cosine threshold applied to activations)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from tests.checking import fail
from tests.input_edits import edited_input_failure


def pre_unedited(pre: Tensor, before: Tensor, what: str) -> None:
    """Fail (code in_place) when the call wrote into the caller's `pre` (`before`: a copy taken before the call)."""
    edited_input_failure(
        what,
        "pre",
        before,
        pre,
        "don't write into pre (masked_fill_, pre[mask] = 0, pre.mul_(...)): build a new tensor, pre * mask or "
        "torch.zeros_like(pre).scatter(...), and return that",
    )


def full_budget(impl: Callable, pre: Tensor) -> None:
    """With k = d_sae the budget k·batch is every entry of an instance: everything is kept, the output is pre."""
    batch, _, d_sae = pre.shape
    what = f"batch_topk(pre {list(pre.shape)}, k={d_sae}) (k = d_sae: k·batch = {batch * d_sae}, every entry)"
    out = impl(pre.clone(), d_sae)
    if not isinstance(out, Tensor) or out.shape != pre.shape or torch.equal(out.detach(), pre):
        return
    dropped = (out.detach() == 0) & (pre != 0)
    n = int(dropped.sum())
    lowest = bool(n) and all(
        bool(pre[:, i][dropped[:, i]].max() <= pre[:, i][~dropped[:, i]].min())
        for i in range(pre.shape[1])
        if dropped[:, i].any() and (~dropped[:, i]).any()
    )
    which = ", the smallest of their instance" if lowest else ""
    fail(
        f"{what} zeroed {n} entr{'y' if n == 1 else 'ies'}{which}, expected every entry kept (the output equal to pre)",
        "when k·batch equals the number of entries of an instance keep them all: a budget capped below it (min(k·"
        "batch, n - 1)), a cut one past the end, or a strict > against the smallest kept value drops some; use "
        "topk(k·batch) itself (k·batch <= n is allowed)"
        if n
        else "keep every entry's value unchanged when all are kept",
        code="full_budget",
    )


def activity_level_variants(
    features: Tensor, acts: Tensor, W_dec: Tensor, W_feat: Tensor, parent_of: list[int], th: float
) -> list[tuple[str, str, Tensor]]:
    """The right fraction with a carrier counted active only when its activation reaches cos_threshold (the cosine
    bound applied to activations), [inst parents]: one catalogue entry for the random-inputs check."""
    cos = torch.einsum(
        "isd,idf->isf", W_dec / W_dec.norm(dim=-1, keepdim=True), W_feat / W_feat.norm(dim=1, keepdim=True)
    )
    ar = torch.arange(acts.shape[1], device=acts.device)
    out = []
    for p in [f for f, q in enumerate(parent_of) if q == -1]:
        children = [f for f, q in enumerate(parent_of) if q == p]
        cases = (features[..., p] > 0) & (features[..., children] > 0).any(-1)
        lat = cos[:, :, p].argmax(-1)
        carriers = cos[:, :, p] >= th
        carriers[ar, lat] = False
        absorbed = cases & (acts[:, ar, lat] == 0) & ((acts >= th) & carriers).any(-1)
        out.append(absorbed.sum(0).to(acts.dtype) / cases.sum(0).clamp_min(1).to(acts.dtype))
    value = torch.stack(out, -1)
    return [
        (
            "activity_level",
            f"your fraction counts a carrier as active only when its activation is >= cos_threshold ({th}): the "
            "cosine threshold applied to the activations. cos_threshold bounds the decoder COSINE with the parent "
            "(which latents are carriers); a carrier is "
            "active when its activation is > 0: ((acts > 0) & carriers).any(-1)",
            value,
        )
    ]
