"""Readings of dimensions_per_feature for a centred sum of squares: W's mean subtracted before squaring.

A learner who writes ‖W‖²_F as N · W.var(...) (or sums (W - W.mean(...))²) drops the N · mean² term: the
denominator is the squared distance from the mean, not from 0. The mean may be taken over the whole W[inst]
(dims (1, 2)), per feature column (dim 1) or per hidden row (dim 2), with the biased (÷N) or unbiased (÷(N-1))
variance, so every combination is read back and named by one family: "centred before squaring"."""

from __future__ import annotations

from torch import Tensor

Mistake = tuple[str, str, Tensor]

_AXES = (
    ((1, 2), "over the whole W[inst]"),
    (1, "per feature column (over d_hidden)"),
    (2, "per hidden row (over features)"),
)


def centred_square_readings(W: Tensor) -> list[Mistake]:
    """d_hidden / Σ (W - mean)² for each axis the mean is taken over, biased and unbiased (N·var with unbiased=True
    is Σ (W - mean)² · N / (N - 1))."""
    W = W.double()
    d = W.shape[1]
    out = []
    for dims, where in _AXES:
        centred = W - W.mean(dims, keepdim=True)
        sumsq = centred.pow(2).sum((1, 2))
        n = W[0].numel() if dims == (1, 2) else W.shape[dims]
        hint = (
            f"your denominator is the sum of squares of W minus its mean {where} (N · W.var(...), or "
            "(W - W.mean(...))²): that drops the N · mean² term. ‖W‖²_F is the sum of the squares of W itself, "
            "not centred: W.pow(2).sum((1, 2))"
        )
        out.append(("centred_squares", hint, d / sumsq))
        out.append(("centred_squares", hint + " (here with the unbiased N - 1 as well)", d / (sumsq * n / (n - 1))))
    return out
