"""Catalogue entries of part 6 (held-out round AV): a decoder row read from the wrong memory layout (a .view or a
flat slice where a transpose or a row index belongs), the ablated term's coefficient not the encoder's activation
(a least-squares coordinate, or f of an activation transformed first), a cross-entropy fed probabilities, a
zero-ablation that zeroes only part of the activation, and a frequency count that flattens each batch before
dropping "the" BOS row."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor


def logit_layouts(model: Any, sae: Any, latent: int) -> list[tuple[str, str, Tensor]]:
    """The decoder row taken from W_dec's memory in another layout: W_dec.view(d_mlp, d_sae)[:, latent] (a view
    reinterprets memory, it does not transpose) and W_dec.flatten()[latent : latent + d_mlp] (stride forgotten)."""
    d_sae, d_mlp = sae.W_dec.shape
    W = model.W_out[0] @ model.W_U
    fix = "W_dec is [d_sae d_mlp]: its row W_dec[latent] (or W_dec.T[:, latent]) is the latent's direction"
    return [
        (
            "row_layout",
            "that is the effect of W_dec.view(d_mlp, d_sae)[:, latent] (or .reshape): a view reinterprets the "
            f"memory, it does not transpose, so that column mixes entries of several rows; {fix}",
            sae.W_dec.reshape(d_mlp, d_sae)[:, latent] @ W,
        ),
        (
            "row_layout",
            "that is the effect of W_dec.flatten()[latent : latent + d_mlp]: a flat slice starting at latent, "
            f"where row latent starts at latent * d_mlp (the row stride); {fix}",
            sae.W_dec.flatten()[latent : latent + d_mlp] @ W,
        ),
    ]


def ablate_coefficients(model: Any, sae: Any, tokens: Tensor, latent: int) -> list[tuple[str, str, Tensor]]:
    """The term removed with a coefficient other than the encoder's activation f = sae.encode(act)[..., latent]:
    the least-squares coordinate (pinv(W_dec)) of act - b_dec, or f of the activation after GELU/ReLU."""
    d = sae.W_dec[latent]
    fix = "f must be the encoder's activation sae.encode(act)[..., latent], of the activation at sae.hook_name as it is"
    P = torch.linalg.pinv(sae.W_dec.double()).to(sae.W_dec.dtype)[:, latent]
    runs = [
        (
            "coefficient_least_squares",
            "that removes f · W_dec[latent] with f the least-squares coordinate of act - b_dec (pinv(W_dec), a "
            f"projection on the decoder rows) instead of the encoder's ReLU activation: {fix}",
            lambda a: (a - sae.b_dec) @ P,
        )
    ]
    for name, g in (("F.gelu", F.gelu), ("F.relu", F.relu)):
        runs.append(
            (
                "coefficient_transformed_act",
                f"that removes f · W_dec[latent] with f = sae.encode({name}(act))[..., latent]: the activation was "
                f"passed through {name[2:]} before encoding (hook_post is already after the MLP's GELU): {fix}",
                lambda a, g=g: sae.encode(g(a))[..., latent],
            )
        )
    return [
        (
            code,
            what,
            model.run_with_hooks(tokens, fwd_hooks=[(sae.hook_name, lambda a, hook, c=c: a - c(a)[..., None] * d)]),
        )
        for code, what, c in runs
    ]


def loss_inputs(model: Any, sae: Any, tokens: Tensor) -> dict[str, list[tuple[str, str, Tensor]]]:
    """Each loss by hand with cross_entropy fed probabilities (softmax applied twice), and a zero-ablation that
    zeroes only the positive (or only the negative) entries of the activation."""
    runs = {
        "clean": [],
        "spliced": [(sae.hook_name, lambda a, hook: sae.decode(sae.encode(a)))],
        "zero_ablated": [(sae.hook_name, lambda a, hook: torch.zeros_like(a))],
    }
    out: dict[str, list[tuple[str, str, Tensor]]] = {k: [] for k in runs}
    for key, hooks in runs.items():
        probs = model.run_with_hooks(tokens, fwd_hooks=hooks)[:, :-1].softmax(-1)
        loss = F.cross_entropy(probs.flatten(0, 1), tokens[:, 1:].flatten())
        out[key].append(
            (
                "softmax_twice",
                "that is F.cross_entropy applied to softmax probabilities: cross_entropy takes logits and applies "
                "log_softmax itself, so softmax ran twice; pass the logits (or use model(tokens, return_type='loss'))",
                torch.tensor(float(loss), dtype=torch.float64),
            )
        )
    for sign, keep in (("positive", lambda a: a > 0), ("negative", lambda a: a < 0)):
        hook = lambda a, hook, keep=keep: torch.where(keep(a), torch.zeros_like(a), a)
        loss = model.run_with_hooks(tokens, return_type="loss", fwd_hooks=[(sae.hook_name, hook)])
        out["zero_ablated"].append(
            (
                "zeroed_partly",
                f"that is the loss with only the {sign} entries of the activation set to zero (the others, which "
                "GELU leaves nonzero, kept): zero-ablation replaces every entry, torch.zeros_like(act)",
                torch.tensor(float(loss), dtype=torch.float64),
            )
        )
    return out


def flattened_batches(model: Any, sae: Any, tokens: Tensor, batch_size: int) -> list[tuple[str, str, Tensor]]:
    """Each batch's activations flattened to [batch * seq, d_mlp] and then [1:]: only the batch's first BOS goes,
    the other sequences' BOS positions are counted."""
    counts = torch.zeros(sae.d_sae, device=sae.W_dec.device)
    n = 0
    for start in range(0, tokens.shape[0], batch_size):
        _, cache = model.run_with_cache(tokens[start : start + batch_size], names_filter=sae.hook_name)
        acts = sae.encode(cache[sae.hook_name].flatten(0, 1)[1:])
        counts += (acts > 0).float().sum(0)
        n += acts.shape[0]
    what = (
        "that flattens each batch to [batch * seq, ...] and then drops row 0 ([1:]): that removes only the first "
        "sequence's BOS, the other sequences' position 0 are counted; drop position 0 of every sequence before "
        "flattening (acts[:, 1:])"
    )
    return [("flattened_then_sliced", what, counts / n)]
