"""Spliced and zero-ablated losses computed another way, read back on the checker's own model and tokens: a splice
that keeps only each token's top latents, decodes the firing pattern (f > 0) or applies the SAE twice, an 'ablation'
that centres the activations over neurons or puts position 0's activation everywhere instead of zeroing them, and a
zero-ablated loss measured on a leading part of the batch. `loss_readings` gathers these with
the logits-mean and softmax-axis readings for test_reconstruction_losses."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from tests.part6_lm_saes_extra_mistakes import logits_means
from tests.part6_lm_saes_hints import softmax_axis_losses
from tests.part6_lm_saes_partial_ablations import partial_ablations
from tests.part6_lm_saes_slip_readings import loss_statistics


def _loss(model: Any, tokens: Tensor, hook_name: str, fn: Any) -> Tensor:
    with torch.no_grad():
        loss = model.run_with_hooks(tokens, return_type="loss", fwd_hooks=[(hook_name, fn)])
    return torch.tensor(float(loss), dtype=torch.float64)


def _top_latents(sae: Any, k: int) -> Any:
    def hook(a: Tensor, hook: Any) -> Tensor:
        f = sae.encode(a)
        keep = torch.zeros_like(f).scatter_(-1, f.topk(k, dim=-1).indices, 1.0)
        return sae.decode(f * keep)

    return hook


def ablation_variants(model: Any, sae: Any, tokens: Tensor) -> dict[str, list[tuple[str, str, Tensor]]]:
    """(code, hint, value) per key, each the loss of that other computation on the checker's inputs."""
    h = sae.hook_name
    spliced = [
        (
            "top_latents_only",
            f"that is the loss with only each token's {k} largest latent(s) kept (the others set to 0) before "
            "decoding: splice in the full reconstruction, sae.decode(sae.encode(act)), every latent included",
            _loss(model, tokens, h, _top_latents(sae, k)),
        )
        for k in (1, 2)
    ] + [
        (
            "binary_latents",
            "that is the loss with the firing pattern decoded, sae.decode((f > 0).float()), not the activations: "
            "splice in sae.decode(sae.encode(act)), each latent weighted by its activation",
            _loss(model, tokens, h, lambda a, hook: sae.decode((sae.encode(a) > 0).float())),
        ),
        (
            "sae_twice",
            "that is the loss with the SAE applied twice, sae(sae(act)) (the reconstruction encoded and decoded "
            "again): splice in one reconstruction, sae.decode(sae.encode(act))",
            _loss(model, tokens, h, lambda a, hook: sae(sae(a))),
        ),
    ]
    zero = [
        (
            "centred_not_zeroed",
            "that is the loss with the activations centred over neurons (act - act.mean(-1, keepdim=True)), not "
            "zeroed: zero-ablation replaces them by zeros, torch.zeros_like(act)",
            _loss(model, tokens, h, lambda a, hook: a - a.mean(-1, keepdim=True)),
        )
    ]
    zero.append(
        (
            "bos_not_zeroed",
            "that is the loss with every position's activations replaced by position 0's (the BOS activation "
            "broadcast, act[:, :1]): zero-ablation replaces them by zeros, torch.zeros_like(act)",
            _loss(model, tokens, h, lambda a, hook: a[:, :1].expand_as(a).clone()),
        )
    )
    n = tokens.shape[0]
    for m in sorted({max(1, n // 2), n - 1} - {n}):
        zero.append(
            (
                "zero_batch_subset",
                f"that is the zero-ablated loss of the first {m} of the {n} sequences only (tokens[:{m}]): run the "
                "zero-ablation on the whole batch, as the clean and spliced runs",
                _loss(model, tokens[:m], h, lambda a, hook: torch.zeros_like(a)),
            )
        )
    return {"spliced": spliced, "zero_ablated": zero}


def loss_readings(model: Any, sae: Any, tokens: Tensor) -> list[dict[str, list[tuple[str, str, Tensor]]]]:
    """Every per-key reading of this module, the logits-mean / softmax-axis readings and `partial_ablations`."""
    return [
        logits_means(model, sae, tokens),
        softmax_axis_losses(model, sae, tokens),
        ablation_variants(model, sae, tokens),
        partial_ablations(model, sae, tokens),
        loss_statistics(model, sae, tokens),
    ]
