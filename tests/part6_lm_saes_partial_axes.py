"""Part 6 readings of a reduction or a splice applied along the wrong part of an axis: a frequency that takes
"fires in any sequence of the batch" per position (a max/any over the batch axis instead of a count of tokens),
and a splice that writes the reconstruction into some sequences of the batch only (act[0] = ..., act[-1] = ...)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


def batch_axis_any(fired: Tensor, batch_size: int) -> list[tuple[str, str, Tensor]]:
    """fired [n_seq seq-1 d_sae] (0/1 floats): per batch, whether the latent fires at each position in ANY of the
    batch's sequences (amax/any over dim 0), summed over positions and batches, divided by the positions counted
    (seq-1 per batch) or by the tokens; and the same over all sequences at once (one batch)."""
    n_seq, n_pos = fired.shape[:2]
    per_batch = sum(chunk.amax(0).sum(0) for chunk in fired.split(batch_size))
    n_batches = -(-n_seq // batch_size)
    what = (
        "that is, at each position, whether the latent fires in ANY sequence of the batch (a max / any over the "
        "batch axis, dim 0), counted per position: that reduces the batch axis with a max instead of counting each "
        "sequence's tokens; count every token, (acts > 0).float().sum((0, 1)), and divide by the number of tokens "
        "(sequences × positions)"
    )
    out = [
        ("batch_axis_any", what, per_batch / (n_batches * n_pos)),
        ("batch_axis_any", what, per_batch / (n_seq * n_pos)),
    ]
    if n_batches > 1:
        out.append(("batch_axis_any", what, fired.amax(0).mean(0)))
    return out


def spliced_rows(model: Any, sae: Any, tokens: Tensor) -> list[tuple[str, str, Tensor]]:
    """The spliced loss with the reconstruction written into one sequence of the batch only (the first or the
    last), the rest left clean: an index on the batch axis where every position was meant."""

    def loss(row: int) -> Tensor:
        def hook(a: Tensor, hook: Any) -> Tensor:
            a = a.clone()
            a[row] = sae.decode(sae.encode(a[row]))
            return a

        with torch.no_grad():
            value = model.run_with_hooks(tokens, return_type="loss", fwd_hooks=[(sae.hook_name, hook)])
        return torch.tensor(float(value), dtype=torch.float64)

    n = tokens.shape[0]
    if n < 2:
        return []
    return [
        (
            "spliced_rows",
            f"that is the loss with only sequence {name} of the batch spliced (act[{row}] = reconstruction[{row}]), "
            f"the other {n - 1} left clean: an index on the batch axis (dim 0) where every sequence and position was "
            "meant; return the whole reconstruction, sae.decode(sae.encode(act)), from the hook",
            loss(row),
        )
        for name, row in (("0", 0), (f"{n - 1} (the last)", -1))
    ]
