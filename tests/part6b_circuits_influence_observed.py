"""node_influence failures described by what was observed, not by a guessed cause: an influence far larger than the
right one (where, how large), and a wrong influence on the deep graph or the long chain that no cut of the series
reproduces. A cause is named only when re-running it reproduces the output: the signed adjacency (A where |A|
belongs, in the entries or in the row sums)."""

from __future__ import annotations

import torch
from torch import Tensor


def _series(a: Tensor, weights: Tensor) -> Tensor:
    eye = torch.eye(len(a), dtype=a.dtype, device=a.device)
    return weights @ (torch.linalg.inv(eye - a) - eye)


def _close(out: Tensor, want: Tensor) -> bool:
    out = torch.as_tensor(out).detach().to(want)
    return out.shape == want.shape and bool(torch.allclose(out, want, rtol=1e-3, atol=1e-5, equal_nan=True))


def signed_cause(out: Tensor, A: Tensor, weights: Tensor) -> str:
    """The signed-adjacency variants re-run on A; the one that reproduces `out`, or ''."""
    a, w = A.double(), weights.double()
    variants = (
        ("Â = A / its row sums (the signed A in the entries and in the sums)", a / a.sum(-1, keepdim=True)),
        ("Â = |A| / the SIGNED row sums A.sum(-1)", a.abs() / a.sum(-1, keepdim=True)),
        ("Â = A / the row sums of |A| (signs kept in the entries)", a / a.abs().sum(-1, keepdim=True)),
    )
    for name, a_hat in variants:
        for fix in (lambda x: x.nan_to_num(0.0, posinf=0.0, neginf=0.0), lambda x: x):
            try:
                if _close(out, _series(fix(a_hat), w)):
                    return name
            except RuntimeError:  # singular I - Â
                continue
    return ""


def where_wrong(out: Tensor, want: Tensor, labels: list[str] | None = None, shown: int = 3) -> str:
    """The nodes whose influence is off, the worst first, with expected vs got."""
    out = torch.as_tensor(out).detach().to(want)
    err = (out - want).abs()
    bad = (err > 1e-4 * want.abs().max() + 1e-6).nonzero().flatten()
    order = bad[err[bad].argsort(descending=True)][:shown].tolist()
    name = (lambda i: labels[i]) if labels else (lambda i: f"node {i}")
    parts = [f"{name(i)}: expected {float(want[i]):.4g}, got {float(out[i]):.4g}" for i in order]
    return f"{len(bad)} of {len(want)} nodes differ ({'; '.join(parts)})"


def huge(out: Tensor, right: Tensor, A: Tensor, weights: Tensor) -> tuple[str, str]:
    """(observed, hint) for an influence more than 1000 × the largest right value."""
    big = float(torch.as_tensor(out).detach().abs().max())
    seen = (
        f"observed: the influence reaches {big:.3g}, more than 1000 × the largest right value "
        f"{float(right.abs().max()):.3g}; {where_wrong(out, right)}"
    )
    cause = signed_cause(out, A, weights)
    if cause:
        return (
            f"{seen}: yours is the influence of {cause}",
            "Â = |A| / its row sums, both from |A| (zero rows left at 0): its rows are nonnegative and sum to at most "
            "1, so (I - Â) stays invertible; influence = w @ ((I - Â)⁻¹ - I)",
        )
    return (
        seen,
        "the right Â = |A| / its row sums (zero rows left at 0) has nonnegative rows that sum to at most 1, so no "
        "influence can grow that large; not softmax rows, elementwise powers or the other axis's sums (those were "
        "re-run and give other values): check the Â you invert, row by row, against that contract "
        "(influence = w @ ((I - Â)⁻¹ - I))",
    )


def unexplained_long_graph(out: Tensor, want: Tensor, A: Tensor, weights: Tensor, cuts: int) -> str:
    """What was seen on a long graph (deep DAG or chain) when no cut of the series after 1..cuts terms reproduces
    the output: the signed-adjacency cause if it reproduces, else where the values differ."""
    out = torch.as_tensor(out).detach()
    if out.shape != want.shape:
        return f"yours has shape {tuple(out.shape)}, expected {tuple(want.shape)}"
    cause = signed_cause(out, A, weights)
    if cause:
        return f"yours is the influence of {cause}"
    return f"{where_wrong(out, want)}; not a series cut after 1..{cuts} terms (each was re-run and gives other values)"
