"""Readings of a loss combined over the wrong set of things.

ablation_losses: the squared change measured at every layer's activation (the hidden ones and the output, each
mean over its own features), summed or averaged over the layers, not at the model's output only.

faithfulness_loss: the per-matrix squared errors combined by a max (or a min) over the matrices instead of a sum,
and the matrices compared as directions (each W_l and U_l V_l divided by its own Frobenius norm per instance)
instead of as raw differences.
"""

from __future__ import annotations

import torch
from torch import Tensor

from utils.part8_parameter_decomposition import WeightChain


def _per_layer_changes(chain: WeightChain, terms: Tensor, x: Tensor) -> Tensor:
    """[k, layer, batch, inst]: the mean squared change of each layer's output activation with term k removed."""
    _, ins0 = chain.run(x)
    clean = [*ins0[1:], chain(x)]
    out = []
    for k in range(terms.shape[1]):
        W0 = chain.weights[0] - terms[:, k]

        def layer_fn(layer: int, a: Tensor, W0: Tensor = W0) -> Tensor:
            W = W0 if layer == 0 else chain.weights[layer]
            return torch.einsum("...id,ied->...ie", a, W)

        y, ins = chain.run(x, layer_fn)
        acts = [*ins[1:], y]
        out.append(torch.stack([(a - c).pow(2).mean(-1) for a, c in zip(acts, clean, strict=True)]))
    return torch.stack(out)


def ablation_every_layer(chain: WeightChain, terms: Tensor, x: Tensor) -> list[tuple[str, str, Tensor]]:
    """The change summed / averaged over every layer's activation, or over the hidden layers only."""
    if len(chain.weights) < 2:
        return []
    per = _per_layer_changes(chain, terms, x)  # [k, layer, batch, inst]
    to_out = lambda t: t.permute(2, 0, 1)  # [k batch inst] -> [inst k batch]
    tail = (
        "the loss is the change of the model's OUTPUT only (chain(x) with W_0 - terms[:, k] against chain(x)), "
        "the mean over output dims of the squared change: the hidden activations are not part of it"
    )
    n = per.shape[1]
    return [
        (
            "every_layer",
            f"yours adds up the squared change at every layer's activation (hidden + output): {tail}",
            to_out(per.sum(1)),
        ),
        (
            "every_layer",
            f"yours averages the squared change over the {n} layers' activations: {tail}",
            to_out(per.mean(1)),
        ),
        (
            "every_layer",
            f"yours measures the change at the hidden activations only: {tail}",
            to_out(per[:, :-1].sum(1)),
        ),
    ]


def faithfulness_combined(weights: list[Tensor], U: list[Tensor], V: list[Tensor]) -> list[tuple[str, str, Tensor]]:
    """Per-matrix squared errors combined by max / min over the matrices, and directions compared."""
    N = sum(W[0].numel() for W in weights)
    se = torch.stack([(W - u @ v).pow(2).sum((-2, -1)) for W, u, v in zip(weights, U, V, strict=True)])  # [L inst]
    tail = "Σ_inst (1/N) Σ_l ‖W_l - U_l V_l‖²: every matrix's squared error added up"
    rows = []
    if len(weights) > 1:
        for name, red in (("max", lambda t, d: t.amax(d)), ("min", lambda t, d: t.amin(d))):
            hint = f"yours takes the {name} over the matrices of their squared errors instead of the sum: {tail}"
            rows.append(("matrix_" + name, hint, (red(se, 0) / N).sum()))
            rows.append(("matrix_" + name, hint, red(se.sum(1), 0) / N))
    unit = lambda M: M / torch.linalg.matrix_norm(M)[..., None, None]
    dirs = sum((unit(W) - unit(u @ v)).pow(2).sum((-2, -1)) for W, u, v in zip(weights, U, V, strict=True))
    rows.append(
        (
            "directions",
            "yours compares the matrices as directions (W_l / ‖W_l‖ against U_l V_l / ‖U_l V_l‖, each divided by its "
            f"own norm): the loss compares them as they are, with their scales, {tail} (no normalisation)",
            (dirs / N).sum(),
        )
    )
    return rows
