"""Part 8, ablation_losses: a layer_fn that does more than the product W_l a, in the ablated run, the baseline, or
both.

`chain(x, layer_fn)` replaces only the product W_l a; the chain adds the bias and applies the activation after it.
A learner who re-implements the layer inside layer_fn (the activation, the bias, or both) gets them twice. The slip
can sit in the ablated runs only (the baseline is chain(x)), in a baseline computed through such a layer_fn (the
ablated runs right), or in both (one layer_fn factory used for both runs); and at the first matrix only (the branch
l == 0) or at every matrix; the activation may be the matrix's own or a ReLU everywhere (the TMS habit, where a
later matrix has a GELU). Each combination is a candidate, named by what layer_fn did, where, and in which run.
The catalogue's `bias_twice` (the bias at every matrix, ablated runs only) comes first and keeps its code.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from tests import part8_parameter_decomposition_mistakes as mis
from utils.part8_parameter_decomposition import ACTIVATIONS, WeightChain

Mistakes = list[tuple[str, str, Tensor]]

SLIPS = {  # what layer_fn adds after the product -> what it does, in words
    "act": "applies the matrix's activation",
    "bias": "adds the matrix's bias",
    "bias_act": "adds the bias and applies the activation (the whole layer)",
    "relu": "applies a ReLU (F.relu, whatever the matrix's activation)",
    "bias_relu": "adds the bias and applies a ReLU (F.relu, whatever the matrix's activation)",
}


def _run(chain: WeightChain, W0: Tensor, x: Tensor, slip: str | None, layers: set[int]) -> Tensor:
    def layer_fn(layer: int, a: Tensor) -> Tensor:
        out = mis.mm(a, W0 if layer == 0 else chain.weights[layer])
        if slip is None or layer not in layers:
            return out
        if "bias" in slip and chain.biases[layer] is not None:
            out = out + chain.biases[layer]
        if "relu" in slip:
            return F.relu(out)
        return ACTIVATIONS[chain.activations[layer]](out) if "act" in slip else out

    return chain(x, layer_fn)


def ablation_layer_fn_slips(chain: WeightChain, terms: Tensor, x: Tensor) -> Mistakes:
    """(code, hint, losses) for every slip, place and run (see the module docstring)."""
    L, K, W0 = len(chain.weights), terms.shape[1], chain.weights[0]
    places = {"at the first matrix (the l == 0 branch)": {0}, "at every matrix": set(range(L))}
    found: Mistakes = []
    with torch.no_grad():
        for slip, does in SLIPS.items():
            for where, layers in places.items():
                for role in ("ablated", "baseline", "both"):
                    if role == "ablated" and slip == "bias" and len(layers) == L:
                        continue  # the catalogue's bias_twice
                    in_base, in_ablated = role in ("baseline", "both"), role in ("ablated", "both")
                    base = _run(chain, W0, x, slip if in_base else None, layers)
                    runs = [_run(chain, W0 - terms[:, k], x, slip if in_ablated else None, layers) for k in range(K)]
                    losses = torch.stack([(y - base).pow(2).mean(-1) for y in runs]).permute(2, 0, 1)
                    found.append(("layer_fn_extra", _hint(role, does, where), losses))
    return found


def _hint(role: str, does: str, where: str) -> str:
    rule = (
        "layer_fn(l, a) returns only the product a @ W_lᵀ (an einsum of a with the matrix); the chain adds the bias "
        "and applies the activation after it, so doing either inside layer_fn does it twice"
    )
    if role == "ablated":
        return (
            f"your ablated runs go through a layer_fn that also {does} {where} (the baseline chain(x) is right): {rule}"
        )
    if role == "baseline":
        return (
            f"your baseline y_original is not chain(x): it is the chain run through a layer_fn that also {does} "
            f"{where} (the ablated runs are right). The baseline is chain(x) itself, with no layer_fn; {rule}"
        )
    return f"both runs (ablated and baseline) go through a layer_fn that also {does} {where}: {rule}"
