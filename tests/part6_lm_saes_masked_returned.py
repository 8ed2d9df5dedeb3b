"""top_activations whose values hold ±inf: the entries masked at position 0 came back as examples. A ranking that
puts -inf first does that: topk of |masked acts| (abs turns the -inf mask into +inf, so every BOS ranks first) or an
ascending ranking (largest=False, sort() without descending). A probe with fewer sequences than k separates them:
after the n_seq masked entries, the first ranking returns the largest |acts|, the second the smallest acts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from tests.checking import fail


def _masked(acts: Tensor) -> Tensor:
    m = acts.detach().double().cpu().clone()
    m[:, 0] = -float("inf")
    return m.flatten()


def _same(got: Tensor, want: Tensor) -> bool:
    """Equal values, ±inf included (same place, same sign), finite ones to float32 rounding."""
    if got.shape != want.shape or not torch.equal(got.isinf(), want.isinf()):
        return False
    inf = want.isinf()
    return torch.equal(got[inf], want[inf]) and bool(torch.allclose(got[~inf], want[~inf], rtol=1e-5, atol=1e-6))


def _probe(impl: Callable, device: Any) -> str | None:
    """The learner's values on [3, 9] signed activations with k = 5 > 3 sequences: which ranking they follow."""
    gen = torch.Generator().manual_seed(7)
    acts = torch.randn(3, 9, generator=gen, dtype=torch.float64)
    acts[:, 0] = 2.5 + torch.rand(3, generator=gen, dtype=torch.float64)  # BOS: the largest, to be ignored
    acts[1, 4], acts[2, 7] = 3.3, -3.1  # the largest |acts| has a negative runner-up: abs and ascending part
    k = 5
    m = _masked(acts)
    readings = {
        "abs": m[m.abs().topk(k).indices],
        "ascending": m.topk(k, largest=False).values,
    }
    try:
        out = impl(acts.float().to(device), k)
        values = torch.as_tensor(out[0]).detach().double().cpu().flatten()
    except Exception:
        return None
    return next((name for name, want in readings.items() if _same(values, want)), None)


def masked_entries_returned(impl: Callable, values: Any, pos_idx: Any, k: int, device: Any) -> None:
    """values holding ±inf: say where they sit (position 0?) and which ranking brings them back."""
    if not (isinstance(values, Tensor) and values.is_floating_point() and values.device.type != "meta"):
        return
    v = values.detach().double().cpu().flatten()
    n_inf = int(v.isinf().sum())
    if n_inf == 0 or bool(v.isnan().any()):
        return
    at_bos = ""
    if isinstance(pos_idx, Tensor) and pos_idx.numel() == v.numel() and not pos_idx.is_floating_point():
        where = pos_idx.detach().cpu().flatten()[v.isinf()]
        at_bos = " (all at position 0: the masked BOS entries)" if bool((where == 0).all()) else ""
    message = f"values contains {n_inf} infinite values of {k}{at_bos}: {[round(x, 3) for x in v.tolist()[:8]]}"
    reading = _probe(impl, device)
    if reading == "abs":
        fail(
            message + "; on a probe with fewer sequences than k, the masked -inf entries come first and then the "
            "largest |acts|",
            "that ranks by absolute value after masking: abs() turns the -inf mask into +inf, so every position 0 "
            "ranks first. Rank the masked activations themselves (topk of the masked acts, largest first) and "
            "return the signed values",
            code="abs_ranked",
        )
    if reading == "ascending":
        fail(
            message + "; on a probe with fewer sequences than k, the masked -inf entries come first and then the "
            "smallest acts",
            "that ranks smallest first (topk(largest=False), or sort() without descending=True): the -inf mask "
            "then ranks first. Take the LARGEST k (topk's default)",
            code="smallest",
        )
    fail(
        message,
        "the -inf used to mask position 0 came back as an example: something ranked it above the real entries. "
        "Possible causes: a ranking by |value| after the mask (abs turns -inf into +inf), an ascending order "
        "(largest=False, sort without descending=True), or values read from another tensor than the one ranked. "
        "Rank the masked acts largest first and return the signed values",
        code="not_finite",
    )
