"""node_influence with two slips at once (held-out round BA): one of the common ways of building Â wrongly (columns,
signs kept, no normalisation, a global or max divisor, L2 rows) together with one of the common ways of summing the
paths wrongly (the identity kept, Â alone, two steps, the contraction on the source axis). Each slip alone is in the
main catalogue; a pair is named by both its halves."""

from __future__ import annotations

import itertools

import torch
from torch import Tensor

_HAT = {
    "Â normalised by column sums, not row sums": lambda a, A: a / a.sum(0, keepdim=True).clamp_min(1e-12),
    "|A| left unnormalised": lambda a, A: a,
    "Â divided by the sum of the whole matrix, not each row's": lambda a, A: a / a.sum(),
    "Â divided by each row's largest entry, not its sum": lambda a, A: a / a.amax(-1, keepdim=True).clamp_min(1e-12),
    "Â divided by each row's L2 norm, not its sum": lambda a, A: torch.nn.functional.normalize(a, dim=-1),
}
_SERIES = {
    "the identity not subtracted ((I - Â)⁻¹ alone)": lambda w, s, eye: w @ torch.linalg.inv(eye - s),
    "Â alone, not the paths of every length": lambda w, s, eye: w @ s,
    "B @ w (the source axis) where w @ B belongs": lambda w, s, eye: (torch.linalg.inv(eye - s) - eye) @ w,
}


def influence_pairs(A: Tensor, weights: Tensor) -> list[tuple[str, str, Tensor]]:
    """(code, hint, value) for each pair of a wrong Â and a wrong path sum that differs from both halves alone."""
    eye = torch.eye(len(A), device=A.device, dtype=A.dtype)
    a = A.abs()
    a_hat = a / a.sum(-1, keepdim=True).clamp_min(1e-12)
    right = weights @ (torch.linalg.inv(eye - a_hat) - eye)
    singles = [weights @ (torch.linalg.inv(eye - h(a, A)) - eye) for h in _HAT.values()]
    singles += [s(weights, a_hat, eye) for s in _SERIES.values()]
    out = []
    for (hat_said, hat), (sum_said, series) in itertools.product(_HAT.items(), _SERIES.items()):
        value = series(weights, hat(a, A), eye)
        if not value.isfinite().all() or any(torch.allclose(value, v, rtol=1e-4, atol=1e-6) for v in [right, *singles]):
            continue
        out.append(
            (
                "two_slips",
                f"two slips at once: {hat_said}, and {sum_said}: Â = |A| / |A|.sum(-1, keepdim=True) (each row's "
                "shares add up to 1), then influence = w @ ((I - Â)⁻¹ - I)",
                value,
            )
        )
    return out
