"""reconstruction_losses, readings made only when a loss is already wrong (a correct answer never pays for them):
a cross-entropy computed by hand that reduces the per-token losses the wrong way (summed over the positions of
each sequence and averaged over the sequences, or the reverse), or that shifts the targets across sequence
boundaries (shifted after flattening, so each sequence's last position is scored against the next sequence's
BOS; or rolled within each sequence, so the last position is scored against its own BOS)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

LOSS_KEYS = ("clean", "spliced", "zero_ablated")


def _hooks(sae: Any, key: str) -> list:
    if key == "spliced":
        return [(sae.hook_name, lambda a, hook: sae.decode(sae.encode(a)))]
    if key == "zero_ablated":
        return [(sae.hook_name, lambda a, hook: torch.zeros_like(a))]
    return []


def loss_reductions(
    model: Any, sae: Any, tokens: Tensor, key: str, got: float, expected: float, rtol: float, atol: float
) -> list[tuple[str, str, Tensor]]:
    """(code, hint, value) of the wrong reductions and shifts of `key`'s loss; nothing (and no model run) when
    `got` already matches `expected` at the checker's tolerance or `key` is not a loss."""
    if key not in LOSS_KEYS or abs(got - expected) <= atol + rtol * abs(expected):
        return []
    n_seq, seq = tokens.shape
    logits = model.run_with_hooks(tokens, fwd_hooks=_hooks(sae, key))
    per_token = F.cross_entropy(logits[:, :-1].flatten(0, 1), tokens[:, 1:].flatten(), reduction="none")
    per_token = per_token.double().view(n_seq, seq - 1)
    as_t = lambda v: torch.tensor(float(v), dtype=torch.float64)
    fix = (
        "the loss is the MEAN over every predicted position of every sequence (.mean() of the per-token losses, "
        "or model(tokens, return_type='loss'))"
    )
    flat = F.cross_entropy(logits.flatten(0, 1)[:-1], tokens.flatten()[1:])
    rolled = F.cross_entropy(logits.flatten(0, 1), tokens.roll(-1, dims=1).flatten())
    return [
        (
            "sum_per_sequence",
            f"that is the per-token losses summed over the {seq - 1} predicted positions of each sequence and "
            f"averaged over the {n_seq} sequences (the loss × {seq - 1}: reduction='sum' divided by the number of "
            f"sequences?): {fix}",
            as_t(per_token.sum(1).mean()),
        ),
        (
            "sum_per_position",
            f"that is the per-token losses summed over the {n_seq} sequences and averaged over the {seq - 1} "
            f"positions (the loss × {n_seq}: reduction='sum' divided by the sequence length?): {fix}",
            as_t(per_token.sum(0).mean()),
        ),
        (
            "shift_across_sequences",
            "that is the cross-entropy with the targets shifted after flattening (logits.flatten(0, 1)[:-1] "
            "against tokens.flatten()[1:]): each sequence's last position is scored against the NEXT sequence's "
            "first token (BOS); shift within each sequence, logits[:, :-1] against tokens[:, 1:], then flatten",
            as_t(flat),
        ),
        (
            "shift_wraps",
            "that is the cross-entropy with the targets rolled within each sequence (tokens.roll(-1, dims=1)): "
            "each sequence's last position is scored against its own first token (BOS), which it does not "
            "predict; drop it: logits[:, :-1] against tokens[:, 1:]",
            as_t(rolled),
        ),
    ]
