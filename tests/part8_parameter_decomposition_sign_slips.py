"""Part 8's svd_terms with the signs of the singular vectors lost: |U|, |Vh| or both taken (to make the directions
"positive"). A singular pair is defined up to a sign flipped in u_k and v_k together; taking |.| of one factor
flips it alone in some entries, so the terms stop adding up to W."""

from __future__ import annotations

import torch
from torch import Tensor

Mistakes = list[tuple[str, str, Tensor]]


def svd_sign_losses(W: Tensor) -> Mistakes:
    U, S, Vh = torch.linalg.svd(W, full_matrices=False)
    terms = lambda U_, Vh_: torch.einsum("iak,ik,ikb->ikab", U_, S, Vh_)
    fix = (
        "keep U and Vh as torch.linalg.svd returns them: a sign is only free when u_k and v_k flip together "
        "(U[:, :, k] *= -1 with Vh[:, k] *= -1), so the terms still add up to W"
    )
    return [
        (
            "abs_singular_vectors",
            f"each term equals the reference's with |U| (u_k's signs lost): {fix}",
            terms(U.abs(), Vh),
        ),
        (
            "abs_singular_vectors",
            f"each term equals the reference's with |Vh| (v_k's signs lost): {fix}",
            terms(U, Vh.abs()),
        ),
        (
            "abs_singular_vectors",
            f"each term equals |σ_k u_k v_kᵀ|: |U| and |Vh| (or the term's absolute value) taken: {fix}",
            terms(U.abs(), Vh.abs()),
        ),
    ]
