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
