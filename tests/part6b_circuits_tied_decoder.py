"""A reading of part 6b's transcoder_forward output: the latents decoded with another matrix of the decoder's shape
[d_sae, d_out] than W_dec (the encoder transposed, W_enc.T: a tied decoder), the bias and skip terms right."""

from __future__ import annotations

from typing import Any

from torch import Tensor


def other_decoders(tc: Any, x: Tensor, acts: Tensor, out: Tensor) -> list[tuple[str, str, Tensor]]:
    """out = acts @ M + b_dec (+ x @ W_skip.T) for M another [d_sae, d_out] matrix of tc than W_dec."""
    skip = x @ tc.W_skip.T if tc.W_skip is not None else 0
    found = []
    for name, matrix in (("W_enc.T (the encoder transposed: a tied decoder)", tc.W_enc.T),):
        if tuple(matrix.shape) != tuple(tc.W_dec.shape):
            continue
        found.append(
            (
                "tied_decoder",
                f"observed: out equals acts @ {name} + b_dec (+ x @ W_skip.T): the latents are decoded with another "
                "matrix of the decoder's shape; decode with the transcoder's own decoder, out = acts @ tc.W_dec + "
                "b_dec (+ x @ W_skip.T): its encoder and decoder are separate, untied weights",
                acts.to(matrix.dtype) @ matrix + tc.b_dec + skip,
            )
        )
    return found
