"""matryoshka_loss mistakes in the error's power: each prefix's error measured by something other than the mean
of its SQUARE over d_in: the mean absolute error (F.l1_loss) or its sum, and the Euclidean norm divided by d_in
(‖e‖ / d_in, the square of the norm left out of ‖e‖² / d_in); the root mean square and the Euclidean norm itself are
catalogued elsewhere, as `rms` and `norm`."""

from __future__ import annotations

import torch
from torch import Tensor

FIX = (
    "each prefix's loss is the mean over d_in of the SQUARED error, "
    "((acts[..., :m] · W_dec[:, :m] + b_dec - h)²).mean(-1)"
)


def error_powers(acts: Tensor, W: Tensor, b: Tensor, h: Tensor, sizes: tuple[int, ...]) -> list:
    """(code, hint, value) rows for the error's power family, over prefix_sizes `sizes`."""
    errs = [torch.einsum("bis,isd->bid", acts[..., :m], W[:, :m]) + b - h for m in sizes]
    rows = [
        (
            "abs_error",
            f"that is the mean ABSOLUTE error of each prefix (|e|.mean(-1), F.l1_loss): {FIX}",
            sum(e.abs().mean(-1) for e in errs),
        ),
        (
            "abs_error",
            f"that is the summed ABSOLUTE error of each prefix (|e|.sum(-1)): {FIX}",
            sum(e.abs().sum(-1) for e in errs),
        ),
        (
            "norm_over_d_in",
            f"that is the Euclidean NORM of each prefix's error divided by d_in (‖e‖ / d_in): the mean of the squared "
            f"error is ‖e‖² / d_in, the norm squared; {FIX}",
            sum(e.norm(dim=-1) / e.shape[-1] for e in errs),
        ),
    ]
    return rows
