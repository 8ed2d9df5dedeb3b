"""Gates on BatchTopKToySAE's threshold update that are stricter than "this instance kept something positive"
(`tests.part5b_absorption`): the update skipped for an instance unless every latent fired somewhere in the batch
(`pos.any(0).all(-1)`), or unless every example kept something (`pos.any(-1).all(0)`). Each such instance kept
positive activations, so the right update moves it; these gates leave it where it was."""

from __future__ import annotations

import torch
from torch import Tensor

Mistake = tuple[str, str, Tensor]


def _same(a: Tensor, b: Tensor, th: Tensor) -> bool:
    """The two updates' changes agree within the threshold check's tolerance."""
    return torch.allclose(a - th, b - th, rtol=1e-3, atol=1e-6)


def gate_candidates(th: Tensor, acts: Tensor, m: float, right: Tensor, others: list[Mistake]) -> list[Mistake]:
    """The right update `right` (from `th`, kept activations `acts` [batch inst d_sae], momentum m) with its
    instances gated by a stricter condition; listed only where the gate leaves some instance that kept something
    unmoved and the result differs from `right` and from every mutant in `others` (so the catalogue stays
    separable on the checker's inputs)."""
    positive = acts > 0
    has_any = positive.any(2).any(0)  # [inst]
    out: list[Mistake] = []
    for gate, how in (
        (positive.any(0).all(-1), "every latent fired somewhere in the batch (pos.any(0).all(-1))"),
        (positive.any(-1).all(0), "every example kept something (pos.any(-1).all(0))"),
    ):
        stuck = (has_any & ~gate).nonzero().flatten().tolist()
        if not stuck:
            continue
        value = torch.where(gate, right, th)
        if any(_same(v, value, th) for v in (right, *(v for _, _, v in others))):
            continue
        count = [int(positive[:, i].sum()) for i in stuck]
        out.append(
            (
                "threshold_gate",
                f"the threshold of instance(s) {stuck} stayed though they kept {count} positive activations, and "
                "every other instance moved by the right step: those are the instances that fail the condition "
                f"'{how}', so the update looks gated by it. Skip only an instance that kept nothing positive in "
                "the whole batch: has_any = (acts > 0).any(dim=(0, 2)); torch.where(has_any, updated, "
                "self.threshold)",
                value,
            )
        )
    return out
