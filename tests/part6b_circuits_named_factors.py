"""Factors that can be named from the inputs' own numbers.

latent_de_embedding / latent_logit_effect: the right view times a norm (or an entry) of the latent's own vectors
(‖W_dec[latent]‖, ‖W_enc[:, latent]‖, their inverses and squares; b_enc[latent] and threshold[latent]
are named by the mistakes catalogue already). The generic scale
reading would only say "0.9878 × the expected ones"; these rows say which number that is. Factors that coincide
on these inputs are named together, so the reading never picks one of two equal candidates.

node_influence: each row of |A| divided by a count (its nonzero entries: a mean; or every node) instead of its sum;
the weights multiplied elementwise into the node's own row sum of B instead of a vector-matrix product.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


def _factors(tc: Any, i: int, side: str) -> list[tuple[str, str, float]]:
    """(written, what it is, value) for each number of the latent's own vectors."""
    dec, enc = float(tc.W_dec[i].norm()), float(tc.W_enc[:, i].norm())
    rows = [
        ("‖W_dec[latent]‖", "the decoder row's norm", dec),
        ("1/‖W_dec[latent]‖", "divided by the decoder row's norm", 1 / dec),
        ("‖W_enc[:, latent]‖", "the encoder column's norm", enc),
        ("1/‖W_enc[:, latent]‖", "divided by the encoder column's norm", 1 / enc),
        ("‖W_dec[latent]‖²", "the decoder row's squared norm", dec**2),
        ("‖W_enc[:, latent]‖²", "the encoder column's squared norm", enc**2),
        ("1/‖W_dec[latent]‖²", "divided by the decoder row's squared norm", 1 / dec**2),
        (
            "1/‖W_enc[:, latent]‖²",
            "divided by the encoder column's squared norm (a projection coefficient)",
            1 / enc**2,
        ),
        ("‖W_dec[latent]‖·‖W_enc[:, latent]‖", "both norms", dec * enc),
        ("b_enc[latent]", "the latent's encoder bias", float(tc.b_enc[i])),
    ]
    if getattr(tc, "threshold", None) is not None:
        th = float(tc.threshold[i])
        rows.append(("threshold[latent]", "the latent's threshold", th))
        if th != 0:
            rows.append(("1/threshold[latent]", "divided by the latent's threshold", 1 / th))
    # named already by the mistakes catalogue (unit_direction, threshold_scale, activation): not listed twice
    named = {"1/‖W_enc[:, latent]‖"} if side == "de" else {"1/‖W_dec[latent]‖"}
    named |= {"threshold[latent]", "1/threshold[latent]", "b_enc[latent]"}
    keep = lambda r: r[0] not in named and r[2] == r[2] and abs(r[2]) not in (0.0, float("inf"))
    return [r for r in rows if keep(r) and abs(r[2] - 1) > 1e-3]


def latent_norm_scales(expected: Tensor, tc: Any, i: int, side: str) -> list[tuple[str, str, Tensor]]:
    """Catalogue rows: `expected` times each named factor (factors within 1e-3 of each other named together)."""
    view = "de-embedding, W_E @ W_enc[:, latent]" if side == "de" else "logit effect, W_dec[latent] @ W_U"
    groups: list[list[tuple[str, str, float]]] = []
    for row in _factors(tc, i, side):
        same = next((g for g in groups if abs(g[0][2] - row[2]) <= 1e-3 * abs(row[2])), None)
        (same.append(row) if same is not None else groups.append([row]))
    out = []
    for g in groups:
        value = g[0][2]
        named = " or ".join(f"{w} ({what})" for w, what, _ in g)
        out.append(
            (
                "latent_norm_factor",
                f"your values are {value:.4g} × the expected ones, and {value:.4g} = {named}"
                + (" (these coincide here)" if len(g) > 1 else "")
                + f": the effect scaled by a number of the latent's own vectors; the {view}, takes no such factor",
                expected * value,
            )
        )
    return out


def influence_row_counts(A: Tensor, weights: Tensor) -> list[tuple[str, str, Tensor]]:
    """The rows of |A| divided by a count (a mean) instead of their sum."""
    eye = torch.eye(len(A), device=A.device, dtype=A.dtype)
    a = A.abs()
    nonzero = (a != 0).sum(-1, keepdim=True).to(A.dtype).clamp_min(1)
    tail = "normalise each row by its SUM, Â = |A| / |A|.sum(-1, keepdim=True), so that every nonzero row sums to 1"
    rows = [
        (
            "row_mean",
            f"each row of |A| was divided by its count of nonzero entries (a mean), not its sum: {tail}",
            nonzero,
        ),
        ("row_mean", f"each row of |A| was averaged over all {len(A)} nodes (|A|.mean(-1)), not summed: {tail}", None),
    ]
    out = []
    for code, hint, count in rows:
        M = a / count if count is not None else a / len(A)
        out.append((code, hint, weights @ (torch.linalg.inv(eye - M) - eye)))
    return out


def influence_elementwise(A: Tensor, weights: Tensor) -> list[tuple[str, str, Tensor]]:
    """w multiplied into B elementwise on the target axis and B then summed over the source axis: each node's own weight
    times its row sum of B, not Σ_t w_t B[t, n]."""
    eye = torch.eye(len(A), device=A.device, dtype=A.dtype)
    a = A.abs()
    B = torch.linalg.inv(eye - a / a.sum(-1, keepdim=True).clamp_min(1e-12)) - eye
    tail = (
        "so a node whose own weight is 0 gets 0 whatever it feeds: the influence of node n is Σ_t w[t] B[t, n], "
        "i.e. w @ B (or (B * w[:, None]).sum(0): weight the target axis and sum over it)"
    )
    return [
        (
            "weights_elementwise",
            f"yours is w[n] × Σ_m B[n, m], e.g. (B * w[:, None]).sum(1): {tail}",
            weights * B.sum(1),
        ),
    ]
