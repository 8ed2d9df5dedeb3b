"""More known mistakes for part 6's checkers (`tests.part6_lm_saes`), from the fresh held-out rounds: each a
(code, hint, value) triple computed on the checker's own inputs, like `tests.part6_lm_saes_mistakes`."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from tests.checking import fail
from tests.part6_lm_saes_mistakes import run

NOT_A_LOSS = (
    "that is the mean of the logits, not a loss: the run returned logits (return_type defaults to 'logits'); "
    "pass return_type='loss' to get the mean cross-entropy"
)


def logits_means(model, sae, tokens: Tensor) -> dict[str, list[tuple[str, str, Tensor]]]:
    """The mean of the logits of each run of reconstruction_losses: a run made without return_type='loss'."""
    as_t = lambda v: torch.tensor(float(v), dtype=torch.float64)
    runs = {
        "clean": model(tokens),
        "spliced": run(model, tokens, sae.hook_name, lambda a, hook: sae.decode(sae.encode(a))),
        "zero_ablated": run(model, tokens, sae.hook_name, lambda a, hook: torch.zeros_like(a)),
    }
    return {k: [("logits_mean", NOT_A_LOSS, as_t(v.mean()))] for k, v in runs.items()}


def frequency_extra(fired: Tensor, batch_size: int) -> list[tuple[str, str, Tensor]]:
    """fired [n_seq seq-1 d_sae] (float): the positions of each batch counted as its tokens."""
    n_batches = -(-fired.shape[0] // batch_size)
    return [
        (
            "positions_only",
            f"that is the count divided by {n_batches} batches × {fired.shape[1]} positions: the number of tokens of "
            "a batch is sequences × positions (acts.shape[0] * acts.shape[1]), not its positions alone",
            fired.sum((0, 1)) / (n_batches * fired.shape[1]),
        )
    ]


def steer_extra(model, sae, tokens: Tensor, latent: int, coeff: float) -> list[tuple[str, str, Tensor]]:
    d = sae.W_dec[latent]

    def clamp(a: Tensor, hook: Any) -> Tensor:
        return a + (coeff - sae.encode(a)[..., latent])[..., None] * d

    return [
        (
            "clamped",
            "that sets the latent TO coeff (x + (coeff - f) · W_dec[latent], a clamp): steering adds coeff · "
            "W_dec[latent] whatever the latent's own activation",
            run(model, tokens, sae.hook_name, clamp),
        ),
        (
            "norm_scaled",
            "the vector was scaled by each position's activation norm: add coeff · W_dec[latent] itself, the same "
            "vector at every position",
            run(model, tokens, sae.hook_name, lambda a, hook: a + coeff * a.norm(dim=-1, keepdim=True) * d),
        ),
    ]


def ablate_extra(model, sae, tokens: Tensor, latent: int) -> list[tuple[str, str, Tensor]]:
    d = sae.W_dec[latent]

    def mean_ablated(a: Tensor, hook: Any) -> Tensor:
        f = sae.encode(a)[..., latent]
        return a - (f - f.mean())[..., None] * d

    return [
        (
            "b_dec_twice",
            "sae.encode already subtracts b_dec: f = sae.encode(act)[..., latent], not sae.encode(act - b_dec) "
            "(b_dec subtracted twice)",
            run(model, tokens, sae.hook_name, lambda a, hook: a - sae.encode(a - sae.b_dec)[..., latent, None] * d),
        ),
        (
            "mean_ablated",
            "that removes (f - f.mean()) · W_dec[latent], a mean-ablation: remove the latent's whole term "
            "f · W_dec[latent] (f itself)",
            run(model, tokens, sae.hook_name, mean_ablated),
        ),
    ]


def per_sequence_topk(values: Any, n_seq: int, k: int) -> None:
    """values of shape [n_seq, k]: the top k of each sequence."""
    if isinstance(values, Tensor) and tuple(values.shape) == (n_seq, k):
        fail(
            f"values has shape {tuple(values.shape)} = (n_seq={n_seq}, k={k}), expected (k={k})",
            "that is a top k within each sequence (topk over the last axis): take the top k over all sequences and "
            "positions together, acts.flatten().topk(k), then turn each flat index into (sequence, position)",
            code="per_sequence",
        )


def integer_effect(out: Any, d_vocab: int) -> None:
    """An integer vector shorter than d_vocab: token ids (topk's indices) instead of the effect itself."""
    if isinstance(out, Tensor) and out.dim() == 1 and not out.is_floating_point() and out.shape[0] < d_vocab:
        fail(
            f"the result is {out.shape[0]} integers (token ids?), expected {d_vocab} floats, one per token",
            "return the whole vector of logit effects, W_dec[latent] @ W_out[0] @ W_U (shape [d_vocab]), not the ids "
            "of its top tokens (topk(...).indices): ranking them comes after",
            code="token_ids",
        )
