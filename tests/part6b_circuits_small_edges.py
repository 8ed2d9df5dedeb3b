"""node_influence on a graph with small edges: the contract keeps every edge, so a learner who prunes small shares
(or small weights) before the path sum changes the influence there. The checker's first graph has no share below
0.034, so this graph holds normalised shares from 0.004 to 0.12 (below every plausible cut: 0.005, 0.01, 0.02, 0.05,
0.1) next to large ones, and the pruning threshold a learner used is read back from the output."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from tests.checking import fail

CONTRACT = "the influence counts every edge, however small: Â = rows of |A| normalised, with nothing dropped"
THRESHOLDS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.025, 0.05, 0.1)


def small_edge_inputs(device: torch.device) -> tuple[Tensor, Tensor]:
    """A 9-node DAG (0-3 latents, 4 error, 5-6 tokens, 7-8 logits) whose rows mix large edges with small ones:
    normalised shares 0.004, 0.008, 0.015, 0.03, 0.04, 0.07, 0.12 sit between the thresholds above, signs mixed."""
    n = 9
    A = torch.zeros(n, n)
    rows = {
        0: {5: 2.0, 6: -0.016},  # share 0.008
        1: {5: -0.6, 6: 0.4, 4: 0.0042},  # share ≈ 0.004
        2: {0: 1.5, 1: -0.03, 6: 0.45},  # share 0.015
        3: {0: -0.07, 1: 0.8, 2: 0.13},  # shares 0.07, 0.13
        7: {1: 0.04, 2: -0.6, 3: 0.3, 4: 0.03},  # shares 0.04, 0.03
        8: {0: -0.5, 3: 0.12, 5: 0.38},  # share 0.12
    }
    for t, sources in rows.items():
        for s, v in sources.items():
            A[t, s] = v
    weights = torch.zeros(n)
    weights[7], weights[8] = 0.6, 0.3
    return A.to(device), weights.to(device)


def _influence(a_hat: Tensor, weights: Tensor) -> Tensor:
    eye = torch.eye(len(a_hat), dtype=torch.float64, device=a_hat.device)
    return weights.double() @ (torch.linalg.inv(eye - a_hat.double()) - eye)


def _pruned(A: Tensor, weights: Tensor) -> list[tuple[str, Tensor]]:
    """(description, influence) for each way of dropping small edges: normalised shares < t (renormalised after or
    not) and raw weights |A| < t, for every threshold t."""
    a = A.abs().double()
    shares = a / a.sum(-1, keepdim=True).clamp_min(1e-12)
    out = []
    for t in THRESHOLDS:
        kept = shares * (shares >= t)
        out.append((f"normalised shares below {t:g} set to 0", _influence(kept, weights)))
        renorm = kept / kept.sum(-1, keepdim=True).clamp_min(1e-12)
        out.append((f"normalised shares below {t:g} dropped and the rows renormalised", _influence(renorm, weights)))
        raw = a * (a >= t)
        raw = raw / raw.sum(-1, keepdim=True).clamp_min(1e-12)
        out.append((f"edges with |weight| below {t:g} dropped before normalising", _influence(raw, weights)))
    return out


def pruned_catalogue(A: Tensor, weights: Tensor) -> list[tuple[str, str, Tensor]]:
    """The pruned influences on the checker's own graph, as catalogue rows: only those that differ from the right
    one (a threshold below the graph's smallest share drops nothing) and from each other."""
    right = _influence(A.abs().double() / A.abs().double().sum(-1, keepdim=True).clamp_min(1e-12), weights)
    rows: list[tuple[str, str, Tensor]] = []
    for what, value in _pruned(A, weights):
        seen = [right] + [v for _, _, v in rows]
        if not any(torch.allclose(value, v.double(), rtol=1e-4, atol=1e-6) for v in seen):
            hint = f"yours is the influence with {what}: edges with share < t dropped: {CONTRACT}"
            rows.append(("pruned_edges", hint, value.to(A.dtype)))
    return rows


def pruned_edges(impl: Callable, device: torch.device, reference: Callable) -> None:
    """Call the learner on the small-edge graph; name a pruning threshold when one reproduces the output."""
    A, weights = small_edge_inputs(device)
    want = reference(A, weights)
    got = torch.as_tensor(impl(A.clone(), weights.clone()), device=device)
    if got.shape == want.shape and torch.allclose(got.to(want), want, rtol=1e-4, atol=1e-6):
        return
    seen = (
        "node_influence is right on the first graph (smallest normalised share 0.034) but not on a graph with "
        "smaller edges (shares from 0.004 to 0.12)"
    )
    if got.shape == want.shape:
        for what, value in _pruned(A, weights):
            if torch.allclose(got.double(), value, rtol=1e-4, atol=1e-6):
                fail(
                    f"{seen}: yours is the influence with {what}",
                    f"edges with share < t dropped: {CONTRACT}; pruning is for drawing the graph afterwards, "
                    f"not for computing the influence",
                    code="pruned_edges",
                )
    fail(
        seen,
        f"possible causes: small edges or shares dropped or rounded (a threshold or a top-k), or a tolerance that "
        f"treats small values as 0; {CONTRACT}",
        code="small_edges",
    )
