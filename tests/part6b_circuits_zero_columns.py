"""attribution_edges read back as the reference with whole source columns zeroed: those sources got no gradient
(detached, fed as constants, or sliced off before requires_grad), every other edge right. Named per source, the BOS
token (position 0) called out: its embedding is a leaf like every other position's. When only latent columns are
empty, the hint also lists latent columns filled from another list than the graph's (round BA: every active latent of
frozen.active, whose first columns are other latents)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from tests.checking import fail

_OTHER_LATENTS = (
    ". Or those columns hold other latents' edges: the latent sources are graph.latent_pos / graph.latent_idx, in "
    "that order (column graph.nodes('latent').start + j is latent j of those lists), not every active latent of "
    "frozen.active (its nonzero() holds latents the graph may not have, in another order)"
)


def zero_columns(out: Tensor, direct: Tensor, graph: Any, rows: list[int]) -> None:
    got, want = out[rows].double(), direct[rows].double()
    tol = dict(rtol=1e-3, atol=2e-4)
    empty = (got.abs().amax(0) == 0) & (want.abs().amax(0) > 2e-4)
    if not empty.any() or not torch.allclose(got[:, ~empty], want[:, ~empty], **tol):
        return
    cols = empty.nonzero().flatten().tolist()
    names = ", ".join(graph.label(c) for c in cols[:6]) + (f" and {len(cols) - 6} more" if len(cols) > 6 else "")
    bos = graph.nodes("token").start in cols
    fail(
        f"observed: the column{'s' if len(cols) > 1 else ''} of {names} {'are' if len(cols) > 1 else 'is'} all "
        "zero where the expected edges are not, and every other edge is right"
        + (": the BOS token (position 0) gets no edges" if bos else ""),
        (
            "the embedding at position 0 (BOS) is a source like every other: make the whole embeds a leaf "
            "(frozen.embeds.clone().requires_grad_()) and feed it as it is, not with position 0 detached, replaced "
            "by a constant or sliced off; its edges are (grad · embedding).sum(-1) like the other tokens'"
            if bos
            else "those sources got no gradient: each source must be a leaf that requires grad and is fed into the "
            "forward as it is (not detached or replaced by a constant); its edge is d(target)/d(source) · source"
            + (
                _OTHER_LATENTS
                if all(graph.nodes("latent").start <= c < graph.nodes("latent").stop for c in cols)
                else ""
            )
        ),
        code="bos_not_leaf" if bos and len(cols) == 1 else "zero_columns",
    )
