"""transcoder_forward's skip term in another form than the matrix product x @ W_skip.T (held-out round BA): x
re-centred over d_in for the skip alone, or an elementwise product of x with a reduction of W_skip (broadcasting
x[..., None, :] * W_skip and summing over the wrong axis gives x * W_skip.sum(0)). The rest of out is right."""

from __future__ import annotations

from typing import Any

from torch import Tensor

RIGHT = "the skip term is the matrix product x @ W_skip.T (out[o] gets Σ_i x[i] · W_skip[o, i], W_skip is [d_out d_in])"


def skip_forms(tc: Any, x: Tensor, acts: Tensor) -> list[tuple[str, str, Tensor]]:
    """(code, hint, out) for out = acts @ W_dec + b_dec + a skip term in another form."""
    if tc.W_skip is None:
        return []
    rest, W = acts.to(x.dtype) @ tc.W_dec + tc.b_dec, tc.W_skip
    forms = [
        (
            "skip_centred",
            "x re-centred over d_in ((x - x.mean(-1)) @ W_skip.T); the encoder and the skip both read x as it is",
            (x - x.mean(-1, keepdim=True)) @ W.T,
        )
    ]
    if W.shape[0] == W.shape[1] == x.shape[-1]:
        said = "an elementwise product, x * W_skip.{} (x[..., None, :] * W_skip summed over the wrong axis, or a "
        forms += [
            ("skip_elementwise", said.format("sum(0)") + "reduction before the product)", x * W.sum(0)),
            ("skip_elementwise", said.format("sum(1)") + "reduction before the product)", x * W.sum(1)),
            ("skip_elementwise", "an elementwise product with the diagonal, x * W_skip.diagonal()", x * W.diagonal()),
        ]
    return [(code, f"your skip term is {what}: {RIGHT}", rest + term) for code, what, term in forms]
