"""generate_batch read-back (round BB): h is a linear map of the features, A_i = M_i W_i per instance, with M_i
a d_in × d_in map applied AFTER W (fitted by least squares on the features the batch shows). A map that is not
the identity is something done to h = W x itself: named when recognised (W Wᵀ: h sent through W a second time;
its inverse); other maps are left to the generic diagnosis (a per-coordinate scale is read earlier)."""

from __future__ import annotations

import torch
from torch import Tensor

from tests.checking import fail

_HINT = (
    "h = W x and nothing after it: "
    "einsum(features, self.model.W, 'batch inst feats, inst d_in feats -> batch inst d_in')"
)


def map_after_W_failure(A: Tensor, W: Tensor) -> None:
    """`A`: [inst d_in feats] float64, the learner's map from features to h (NaN on columns the batch never shows);
    `W`: the model's W [inst d_in feats] float64. Fail when every A_i = M_i W_i with M_i ≠ I."""
    maps = []
    for a, w in zip(A, W, strict=True):
        known = ~a.isnan().any(0)
        if int(known.sum()) < w.shape[0] or torch.linalg.matrix_rank(w[:, known]) < w.shape[0]:
            return  # M is not identified by the columns the batch shows
        m = a[:, known] @ torch.linalg.pinv(w[:, known])
        if not torch.allclose(m @ w[:, known], a[:, known], rtol=1e-3, atol=1e-4):
            return  # not a map applied after W
        maps.append(m)
    M = torch.stack(maps)
    eye = torch.eye(M.shape[-1], dtype=M.dtype).expand_as(M)
    close = lambda a, b: bool(torch.allclose(a, b, rtol=1e-3, atol=1e-4))
    if close(M, eye):
        return
    gram = W @ W.mT  # [inst d_in d_in]
    named = (
        ("W Wᵀ: your h is W Wᵀ (W x), the hidden vector sent through W a second time (W Wᵀ W x)", gram),
        ("(W Wᵀ)⁻¹: your h is (W Wᵀ)⁻¹ W x, a solve where a plain product was asked", torch.linalg.inv(gram)),
    )
    for what, value in named:
        if close(M, value):
            fail(f"generate_batch is linear in the features with a map applied after W x: {what}", _HINT, "map_after_W")
