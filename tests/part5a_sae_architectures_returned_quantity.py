"""Readings for part 5a's metric checkers where the learner returned a different quantity than the one asked:

* dead_latent_fraction: the dead count divided by another count of latents than d_sae (the alive ones);
* feature_recovery: the index of the best latent (argmax) returned in place of its cosine.
"""

from __future__ import annotations

import torch
from torch import Tensor

Mutant = tuple[str, str, Tensor]


def dead_over_other_counts(acts: Tensor) -> list[Mutant]:
    """The number of dead latents divided by a count of latents other than d_sae: the alive count (d_sae - dead)
    or the dead count plus d_sae. The checker's acts have 2, 3, 0 dead of 7, so each gives other values."""
    dead = (acts == 0).all(0).to(acts.dtype).sum(-1)
    d_sae = acts.shape[2]
    fix = f"a fraction of the latents divides the dead count by d_sae = acts.shape[2] = {d_sae}"
    fix += ", i.e. (acts == 0).all(0).mean(-1)"
    return [
        (
            "dead_over_alive",
            f"your values are the dead count divided by the number of *alive* latents (d_sae - dead): {fix}",
            dead / (d_sae - dead).clamp_min(1),
        ),
        (
            "dead_over_wrong_count",
            f"your values are the dead count divided by dead + d_sae: {fix}",
            dead / (dead + d_sae),
        ),
    ]


def recovery_indices(W_feat: Tensor, W_dec: Tensor) -> list[Mutant]:
    """The index (argmax over the latents) of each feature's best latent, as floats: what `.max(dim=1)[1]` or
    `.indices` gives, cast to the weights' dtype. With the right cosines and with un-normalised dot products."""
    cos = torch.einsum(
        "isd,idf->isf", W_dec / W_dec.norm(dim=-1, keepdim=True), W_feat / W_feat.norm(dim=1, keepdim=True)
    )
    dots = torch.einsum("isd,idf->isf", W_dec, W_feat)
    fix = "return the best cosine's value, cos.max(dim=1).values (or .amax(1)), not [1] / .indices / argmax"
    out = [
        (
            "returned_indices",
            "your values are whole numbers, the index j of each feature's best latent (argmax over d_sae of the "
            f"cosine), not the cosine itself: {fix}",
            cos.argmax(1).to(W_feat.dtype),
        )
    ]
    raw = dots.argmax(1).to(W_feat.dtype)
    if not torch.equal(raw, out[0][2]):
        out.append(
            (
                "returned_indices",
                "your values are whole numbers, the index j of each feature's largest dot product W_dec[j] · "
                f"W_features[:, f] (un-normalised), not a cosine: normalise both, then {fix}",
                raw,
            )
        )
    return out
