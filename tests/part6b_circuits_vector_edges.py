"""Hints for attribution_edges when a vector node's columns (tokens, errors) are all zero. Two causes give that:
the gradient never reached the leaf (the forward used frozen.embeds / a copy, not the leaf tensor the gradient is
taken with respect to), or the gradient was summed over d_model before meeting the vector (alone, or as a product of
sums grad.sum(-1) * vector.sum(-1)) instead of dotted with it: every normalisation subtracts the mean over d_model, so
the gradient sums to 0. Both are listed, the leaf first."""

from __future__ import annotations

_LEAF = {"token": "embedding", "error": "error"}
_FROZEN = {"token": "frozen.embeds", "error": "frozen.error"}


def zero_vector_columns(kinds: tuple[str, ...]) -> str:
    """The hint for the columns of `kinds` (e.g. ("token",) or ("token", "error")) all zero."""
    leaves = " and ".join(_LEAF[k] for k in kinds)
    frozen = " / ".join(_FROZEN[k] for k in kinds)
    s = "s" * (len(kinds) > 1)
    return (
        f"the {' and '.join(kinds)} columns are zero (to rounding). Possible causes: (1) the gradient never reached "
        f"your {leaves} {'leaves' if s else 'leaf'}: the forward must use the leaf tensor{s} you take gradients with "
        f"respect to (not {frozen} / a copy); (2) the gradient summed over d_model before it meets the vector, "
        "e.g. grad.sum(-1) alone or a product of sums grad.sum(-1) * embeds.sum(-1): every normalisation subtracts "
        "the mean over d_model, so that sum is 0. A vector node's edge is the dot product (gradient · vector).sum(-1), "
        "a sum of products, e.g. (grad_embeds * embeds).sum(-1)"
    )
