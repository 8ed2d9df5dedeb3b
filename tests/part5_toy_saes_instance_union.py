"""Resampling: which latents changed, read as the dead latents of every instance pooled into one index list.

A per-instance loop that takes its indices from `torch.where(dead)[1]` (or `dead.nonzero()[:, 1]`) resamples, in
each instance, the latents dead in ANY instance. The window statistics (sum, largest, last value) can't tell that
apart from a threshold rule when the pooled set happens to be a lower set of one of them, so this read-back comes
first: the changed latents are exactly the union over instances of the dead ones, in every active instance.
"""

from __future__ import annotations

import torch
from torch import Tensor

from tests.checking import fail


def pooled_instance_indices(changed: Tensor, expected: Tensor, frac: Tensor, active: Tensor) -> None:
    """changed, expected: [inst d_sae]; frac: [window inst d_sae]; active: [inst] (instances where resampling is
    expected). Fail when the changed latents are, in every active instance, the latents dead in any instance."""
    if torch.equal(changed, expected) or not (changed & ~expected).any():
        return
    dead = (frac <= 0).all(0)
    act = active[:, None].expand_as(changed)
    for pooled in (dead.any(0), (dead & act).any(0)):
        union = pooled[None, :].expand_as(changed) & act
        if torch.equal(union, expected):
            continue  # every instance has the same dead latents: the pooled list is right
        if torch.equal(changed, union):
            n_other = int((changed & ~expected).sum())
            fail(
                f"{int(changed.sum())} latents were resampled, expected the {int(expected.sum())} dead ones: in each "
                f"instance exactly the latents that are dead in ANY instance changed ({n_other} of them live in the "
                "instance where they changed)",
                "take each instance's own dead indices, e.g. `dead[inst].nonzero().squeeze(-1)` inside the loop, or "
                "index with the [inst d_sae] mask itself; `torch.where(dead)[1]` / `dead.nonzero()[:, 1]` lists the "
                "dead latents of every instance together",
                code="pooled_instances",
            )
