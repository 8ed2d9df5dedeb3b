"""node_influence read back with the row sums broadcast along the wrong axis: a reduction without keepdim
(a.sum(-1) is [n]) divides COLUMN j by row j's sum, a zero sum clamped, set to 1, or its quotients zeroed."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from tests.checking import fail


def _series(a: Tensor, weights: Tensor) -> Tensor:
    eye = torch.eye(len(a), dtype=a.dtype, device=a.device)
    return weights @ (torch.linalg.inv(eye - a) - eye)


def _close(out: Any, want: Tensor) -> bool:
    try:
        got = torch.as_tensor(out).detach().double().cpu()
        return got.shape == want.shape and bool(torch.isfinite(want).all() and torch.allclose(got, want, 1e-3, 1e-5))
    except (TypeError, RuntimeError, ValueError):
        return False


def row_sums_broadcast(out: Any, A: Tensor, weights: Tensor) -> None:
    """Â = |A| / a.sum(-1) (no keepdim): the row sums line up with the columns, so Â[t, s] = |A[t, s]| / Σ A[s, ·]."""
    a = A.detach().abs().double().cpu()
    w = weights.detach().double().cpu()
    rows = a.sum(-1)
    zero = rows == 0
    fixes = (
        ("clamped to a tiny number", a / rows.clamp_min(1e-12)[None, :]),
        ("set to 1", a / torch.where(zero, 1.0, rows)[None, :]),
        ("its quotients set to 0", torch.where(zero[None, :], 0.0, a / torch.where(zero, 1.0, rows)[None, :])),
    )
    for how, a_hat in fixes:
        with torch.no_grad():
            if _close(out, _series(a_hat, w)):
                fail(
                    "your influence is that of Â = |A| / a.sum(-1) broadcast along the last axis: the row sums "
                    "([n], the reduced axis dropped) line up with the COLUMNS, so column j is divided by row j's "
                    f"sum (a zero sum {how}); re-running with that Â gives your output",
                    "keep the reduced axis so each row is divided by its own sum: a / a.sum(-1, keepdim=True) (or "
                    "a.sum(-1)[:, None]); a reduction without keepdim broadcasts against the last axis",
                    code="keepdim",
                )
