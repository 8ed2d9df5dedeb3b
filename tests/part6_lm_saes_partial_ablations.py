"""Part 6 reconstruction_losses: losses computed another way, read back on the checker's own model and tokens.

* clean (and the others): the mean of per-batch mean losses over batches of b sequences when b does not divide the
  number of sequences (the short last batch weighs as much as a full one);
* spliced: the reconstruction minus the SAE's error (2 · x̂ − act, the error kept with the wrong sign), and the
  latents clamped to at most 1 before decoding;
* zero_ablated: position 0 alone zeroed, and the activations halved instead of zeroed.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


def _loss(model: Any, tokens: Tensor, hooks: list) -> float:
    with torch.no_grad():
        return float(model.run_with_hooks(tokens, return_type="loss", fwd_hooks=hooks))


def _bos_zeroed(a: Tensor, hook: Any) -> Tensor:
    a = a.clone()
    a[:, 0] = 0
    return a


def partial_ablations(model: Any, sae: Any, tokens: Tensor) -> dict[str, list[tuple[str, str, Tensor]]]:
    """(code, hint, value) per key, each the loss of that other computation on the checker's inputs."""
    h, n = sae.hook_name, tokens.shape[0]
    t = lambda v: torch.tensor(v, dtype=torch.float64)
    splice = lambda a, hook: sae.decode(sae.encode(a))
    zeros = lambda a, hook: torch.zeros_like(a)
    out: dict[str, list[tuple[str, str, Tensor]]] = {"clean": [], "spliced": [], "zero_ablated": []}
    for b in range(2, n):
        if n % b:
            chunks = tokens.split(b)
            sizes = " + ".join(str(len(c)) for c in chunks)
            for key, hooks in (("clean", []), ("spliced", [(h, splice)]), ("zero_ablated", [(h, zeros)])):
                out[key].append(
                    (
                        "batch_means",
                        f"that is the mean of the per-batch mean losses over batches of {b} sequences ({sizes}): the "
                        "short last batch weighs as much as a full one. Run all the tokens at once (or weight each "
                        "batch's loss by its number of predicted tokens)",
                        t(sum(_loss(model, c, hooks) for c in chunks) / len(chunks)),
                    )
                )
    out["spliced"] += [
        (
            "error_sign",
            "that is the loss with 2 · x̂ − act spliced in (x̂ = sae.decode(sae.encode(act))): the reconstruction minus "
            "the SAE's error, the error kept with the wrong sign. Splice in x̂ alone",
            t(_loss(model, tokens, [(h, lambda a, hook: 2 * sae.decode(sae.encode(a)) - a)])),
        ),
        (
            "latents_clamped",
            "that is the loss with the latents clamped to at most 1 before decoding (clamp(0, 1) or min(f, 1)): SAE "
            "latents are not probabilities, decode them as they are, sae.decode(sae.encode(act))",
            t(_loss(model, tokens, [(h, lambda a, hook: sae.decode(sae.encode(a).clamp(max=1)))])),
        ),
    ]
    out["zero_ablated"] += [
        (
            "bos_only_zeroed",
            "that is the loss with only position 0's activations zeroed: zero-ablation replaces the activations at "
            "every position, torch.zeros_like(act)",
            t(_loss(model, tokens, [(h, _bos_zeroed)])),
        ),
        (
            "halved_not_zeroed",
            "that is the loss with the activations halved (0.5 · act), not zeroed: zero-ablation replaces them by "
            "zeros, torch.zeros_like(act)",
            t(_loss(model, tokens, [(h, lambda a, hook: 0.5 * a)])),
        ),
    ]
    return out
