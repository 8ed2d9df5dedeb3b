"""top_activations on activations far below zero (every real entry near -1e6): the contract allows any real values,
so position 0 must lose to every real entry. A finite mask value (-1e4, -1e5, torch.finfo's -max / 2 ...) is only low
relative to the activations it was tried on; here it outranks them and comes back as an example."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from tests.checking import fail
from tests.part6_lm_saes_extra_mistakes import _top_run


def far_below_probe(impl: Callable, reference: Callable, device: Any) -> None:
    """[5, 7] activations with real entries in [-1e6 - 1e3, -1e6] (distinct in float32), position 0 the largest
    (BOS, to be ignored), k = 4 of the 30 real entries."""
    gen = torch.Generator().manual_seed(4)
    acts = -1e6 - torch.randperm(35, generator=gen).double().view(5, 7) * 30.0  # steps of 30: exact in float32
    acts[:, 0] = 0.5 + torch.rand(5, generator=gen, dtype=torch.float64)
    acts = acts.float().to(device)
    _, (values, _, pos_idx), exp_values, same = _top_run(impl, reference, acts, 4)
    if same or values is None or values.shape != pos_idx.shape:
        return
    at_bos = values[pos_idx.long() == 0].double()
    bos = acts[:, 0].detach().double().cpu()
    masks = [float(v) for v in at_bos.unique() if bool(v.isfinite()) and not bool(torch.isclose(bos, v).any())]
    shown = [round(float(v), 1) for v in values.flatten()[:8]]
    if masks:
        fail(
            f"on activations far below zero (every real entry near -1e6), position 0 came back with the value "
            f"{masks[0]:.6g}: the result is {shown}, expected {[round(float(v), 1) for v in exp_values]}",
            f"a finite mask value ({masks[0]:.6g}) beats entries below it; acts may be any real values, so position 0 "
            "must lose to every real entry: use float('-inf') (acts[:, 0] = -torch.inf on a copy)",
            code="bos_mask_not_lowest",
        )
    fail(
        f"on activations far below zero (every real entry near -1e6, position 0 the largest), the result is {shown}, "
        f"expected {[round(float(v), 1) for v in exp_values]}",
        "the k largest entries at positions >= 1, whatever their scale: exclude position 0 with -inf (not a finite "
        "'very negative' number) and keep every real entry",
        code="far_below",
    )


def min_fill_probe(impl: Callable, reference: Callable, device: Any) -> None:
    """[3, 5] activations, k = 12: every real entry (positions >= 1) is an answer, so the smallest real entry is the
    k-th. Position 0 filled with acts.min() (or any finite value not below every real entry) ties with it or beats
    it, and topk may return a position-0 entry in its place."""
    gen = torch.Generator().manual_seed(6)
    acts = torch.randperm(15, generator=gen).double().view(3, 5) * 0.25 - 1.0  # distinct, negatives too
    acts[:, 0] = 5.0 + torch.arange(3, dtype=torch.float64)  # BOS, the largest, to be ignored
    real = acts[:, 1:]
    lo = divmod(int(real.argmin()), 4)
    acts[2, 4], acts[lo[0], lo[1] + 1] = acts[lo[0], lo[1] + 1].clone(), acts[2, 4].clone()  # smallest: last
    acts = acts.float().to(device)
    k = 12
    _, (values, _, pos_idx), exp_values, same = _top_run(impl, reference, acts, k)
    if same or values is None or values.shape != pos_idx.shape:
        return
    at_bos = values[pos_idx.long() == 0].double()
    smallest = float(acts[:, 1:].min())
    if at_bos.numel():
        tie = bool(torch.isclose(at_bos, torch.tensor(smallest, dtype=torch.float64)).any())
        fail(
            f"with k = {k}, every real entry of a [3, 5] `acts` (positions 1-4), position 0 came back with the value "
            f"{float(at_bos[0]):.4g}" + (f", the smallest real entry's value ({smallest:.4g})" if tie else ""),
            (
                "position 0 was masked with acts.min() (or another value equal to the smallest entry): it then ties "
                "with the smallest real entry and topk may return position 0 instead"
                if tie
                else "position 0 was masked with a finite value that is not below every real entry"
            )
            + ": mask it with -inf (acts[:, 0] = -torch.inf on a copy), or take topk of acts[:, 1:] and add 1 to "
            "the position",
            code="bos_mask_ties",
        )
    fail(
        f"with k = {k}, every real entry of a [3, 5] `acts` (positions 1-4), the result is "
        f"{[round(float(v), 3) for v in values.flatten()[:k]]}, expected {[round(float(v), 3) for v in exp_values]}",
        "when k reaches every entry at positions >= 1, all of them come back (largest first) and no position 0",
        code="k_all_real",
    )
