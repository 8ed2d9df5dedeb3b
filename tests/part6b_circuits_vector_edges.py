"""Hints for attribution_edges when a vector node's columns (tokens, errors) are all zero. Two causes give that:
the gradient never reached the leaf (the forward used frozen.embeds / a copy, not the leaf tensor the gradient is
taken with respect to), or the gradient was summed alone instead of dotted with the vector (every normalisation
subtracts the mean over d_model, so the gradient alone sums to 0). Both are listed, the leaf first."""

from __future__ import annotations

_LEAF = {"token": "embedding", "error": "error"}
_FROZEN = {"token": "frozen.embeds", "error": "frozen.error"}


def zero_vector_columns(kinds: tuple[str, ...]) -> str:
    """The hint for the columns of `kinds` (e.g. ("token",) or ("token", "error")) all zero."""
    leaves = " and ".join(_LEAF[k] for k in kinds)
    frozen = " / ".join(_FROZEN[k] for k in kinds)
    s = "s" * (len(kinds) > 1)
    return (
        f"the {' and '.join(kinds)} columns are zero. Possible causes: (1) the gradient never reached your {leaves} "
        f"{'leaves' if s else 'leaf'}: the forward must use the leaf tensor{s} you take gradients with respect to (not "
        f"{frozen} / a copy); (2) a vector node's edge is (gradient · vector).sum(-1), e.g. "
        "(grad_embeds * embeds).sum(-1) (the gradient alone sums to 0 over d_model, as every normalisation "
        "subtracts the mean)"
    )
