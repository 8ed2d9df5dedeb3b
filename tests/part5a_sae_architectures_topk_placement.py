"""Part 5a: TopK activations with the right values at the wrong latents.

acts_post keeps each example's k largest values of ReLU(pre) *in place*: value j of the top k goes back to the latent
it came from. A learner who reorders the indices and not the values (`top.indices.sort(-1)` before the scatter),
takes the indices and the values from two different top-k calls, or gathers the values in another order, ends with
the right multiset of values per example placed on the wrong latents. `misplaced_values` reads that: each example's
sorted activations equal the reference's, while the activations themselves differ.
"""

from __future__ import annotations

import torch
from torch import Tensor

from tests.checking import fail


def misplaced_values(acts: Tensor, want: Tensor) -> None:
    """Fail when `acts` (the learner's acts_post, [batch inst d_sae]) holds each example's expected values, but not
    at the expected latents; silent otherwise."""
    if acts.shape != want.shape:
        return
    got, want = acts.detach().to(want.dtype), want.detach()
    if torch.allclose(got, want, rtol=1e-4, atol=1e-5):
        return
    if not torch.allclose(got.sort(-1).values, want.sort(-1).values, rtol=1e-4, atol=1e-5):
        return
    moved = int(((got - want).abs() > 1e-5).any(-1).sum())
    fail(
        f"acts_post holds the right values on every example, but on {moved} (example, instance) pairs some of them sit "
        "at the wrong latents (each example's sorted activations are right)",
        "put each kept value back at the latent it came from: scatter top.values at top.indices exactly as topk "
        "returns them (don't sort or reorder the indices without the values, and take both from the same topk call)",
        code="values_misplaced",
    )
