"""Frequencies in the wrong units (an integer division of the counts, a percentage), batches cut along the positions
instead of the sequences; and a steering vector divided by the decoder row's norm or squared norm, a correct variant
(the markdown documents W_dec's rows as unit rows) compared with the reference steered by the same factor."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from tests.checking import fail
from tests.part6_lm_saes_layouts import flattened_batches

INT_DIV = (
    "an integer division (`//`, or a division of integer counts with rounding_mode='floor') of the counts by the "
    "number of tokens, which rounds every fraction below 1 down to 0: divide as floats (`counts.float() / n_tokens`)"
)


def integer_frequencies(out: Any, d_sae: int) -> None:
    """An integer-typed result of the right shape whose entries are all 0 or 1: the counts divided with `//`."""
    if not isinstance(out, Tensor) or out.device.type == "meta" or tuple(out.shape) != (d_sae,):
        return
    if out.is_floating_point() or out.is_complex() or out.dtype == torch.bool:
        return
    if out.numel() and int(out.min()) >= 0 and int(out.max()) <= 1:
        fail(
            f"latent_frequencies(...) has dtype {out.dtype} and {int((out == 0).sum())} of its {d_sae} entries are "
            "0, expected float fractions in [0, 1]",
            INT_DIV,
            code="int_division",
        )


def frequency_units(expected: Tensor, per_seq: int) -> list[tuple[str, str, Tensor]]:
    """The right frequencies rounded down (an integer division) and × 100 (a percentage); and × per_seq² (the
    positions >= 1 of a sequence, squared): counts / n_seq * per_seq, a precedence slip."""
    return [
        (
            "precedence",
            f"that is the fraction × {per_seq}² = {per_seq**2}, (seq − 1)² with seq − 1 = {per_seq} positions >= 1 "
            f"per sequence: counts / n_seq * (seq − 1) divides by n_seq and then MULTIPLIES by seq − 1 (`/` and `*` "
            "go left to right); divide by the product, counts / (n_seq * (seq − 1))",
            expected * per_seq**2,
        ),
        ("int_division", f"that is every frequency rounded down to an integer: {INT_DIV}", expected.floor()),
        (
            "percent",
            "that is a percentage (100 × the fraction): return a fraction in [0, 1] (the count divided by the number "
            "of tokens, without × 100)",
            expected * 100,
        ),
    ]


def position_batches(model: Any, sae: Any, tokens: Tensor, batch_size: int) -> list[tuple[str, str, Tensor]]:
    """Batches cut along the position axis (tokens.split(batch_size, dim=1), tokens[:, i:i + batch_size]): each chunk
    of positions runs as a sequence of its own, without its context, and its first position is dropped as BOS; the
    count divided by the tokens actually counted or by every position >= 1."""
    n_seq, seq = tokens.shape
    if seq <= batch_size or n_seq == batch_size:
        return []
    counts = torch.zeros(sae.d_sae, device=sae.W_dec.device)
    n = 0
    for chunk in tokens.split(batch_size, dim=1):
        _, cache = model.run_with_cache(chunk, names_filter=sae.hook_name)
        acts = sae.encode(cache[sae.hook_name][:, 1:])
        counts += (acts > 0).float().sum((0, 1))
        n += acts.shape[0] * acts.shape[1]
    what = (
        "that batches along the position axis (tokens.split(batch_size, dim=1) or tokens[:, i:i + batch_size]): "
        "each chunk of positions then runs without the positions before it and loses its first position as if it "
        "were BOS; batch along the sequences (dim 0: tokens[i:i + batch_size]), each batch keeping whole sequences"
    )
    out = [("position_batches", what, counts / n), *flattened_batches(model, sae, tokens, batch_size)]
    if n != n_seq * (seq - 1):
        out.append(("position_batches", what, counts / (n_seq * (seq - 1))))
    return out


def unit_row_reference(
    out: Tensor,
    expected: Tensor,
    ref: Callable[..., Tensor],
    model: Any,
    sae: Any,
    tokens: Tensor,
    latent: int,
    coeff: float,
) -> Callable[..., Tensor]:
    """The steering reference to compare with. The markdown documents W_dec's rows as unit rows, so a vector
    coeff · W_dec[latent] / ‖W_dec[latent]‖ or / ‖W_dec[latent]‖² (the projection formula's habit) is the same
    steering on every allowed SAE: a correct variant. The shipped rows have norm 1 only to float32 rounding (about
    1e-4), enough to move a few logits past the tolerance, so such a variant is compared with the reference steered
    by coeff / ‖row‖^k (for whichever latent and coeff the call gets)."""
    if torch.allclose(out, expected, rtol=1e-4, atol=1e-4):
        return ref
    for k in (2, 1):
        variant = lambda m, s, t, lat, c, k=k: ref(m, s, t, lat, c / float(s.W_dec[lat].norm()) ** k)
        if torch.allclose(out, variant(model, sae, tokens, latent, coeff), rtol=1e-4, atol=1e-4):
            return variant
    return ref
