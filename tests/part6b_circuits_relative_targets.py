"""A reading of part 6b's attribution edges: the logit targets taken relative to another logit (minus one logit node's
value, e.g. the top prediction's, or minus their mean), so each logit row is the right one minus a reference row
(the reference logit's own row then all zero)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from tests.checking import fail

CLOSE = {"rtol": 1e-3, "atol": 2e-4}


def relative_logits(got: Tensor, want: Tensor, graph: Any) -> None:
    """got/want: the target rows, latents first then logits. Logit rows equal to the right ones minus one logit's
    row (or minus the mean of the logit rows), where the latent rows fit: the targets are relative logits."""
    n_lat = graph.n_latents
    lg, lw = got[n_lat:], want[n_lat:]
    if lw.shape[0] < 2 or torch.allclose(lg, lw, **CLOSE):
        return
    labels = [graph.label(r) for r in range(graph.n_nodes)][graph.nodes("logit")]
    refs = [(f"the logit {labels[j]} (logit node {j})", lw[j]) for j in range(lw.shape[0])]
    refs.append(("the mean of the logit nodes", lw.mean(0)))
    for what, ref in refs:
        if torch.allclose(lg, lw - ref, **CLOSE):
            latents = "; the latent rows are right" if torch.allclose(got[:n_lat], want[:n_lat], **CLOSE) else ""
            fail(
                f"each logit row is the right one minus the row of {what}: your logit targets are taken relative to "
                f"it (logit - that logit){latents}",
                "a logit node's target is its own logit at the last position, logits[-1, token], not a difference "
                "to another logit (the top prediction's) or to their mean",
                code="relative_logits",
            )
