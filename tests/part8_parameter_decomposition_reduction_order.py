"""Reductions taken before the nonlinearity that should come first: importance_minimality_loss's importances summed
or averaged over the instances or the batch before the power, and faithfulness_loss's norms taken before the
difference ((‖W‖ - ‖U V‖)², the difference of the norms, where the norm of the difference belongs)."""

from __future__ import annotations

import itertools

import torch
from torch import Tensor

Mistakes = list[tuple[str, str, Tensor]]

MINIMALITY_AXES = {0: "the batch", 1: "the instances"}


def minimality_inside_power(ci: list[Tensor], p: float, eps: float) -> Mistakes:
    """(reduce_S g + eps)^p for every non-empty set S of the batch and instance axes and a sum or a mean, then the
    remaining reductions as the penalty has them (Σ_c, Σ_l, mean over the batch, Σ over instances)."""
    out = []
    with torch.no_grad():
        for n_axes in (1, 2):
            for axes, op in itertools.product(itertools.combinations(MINIMALITY_AXES, n_axes), ("sum", "mean")):
                if (axes, op) == ((0,), "sum"):  # variants.minimality_inner_batch's batch_summed_before_power
                    continue
                value = sum((getattr(g, op)(axes, keepdim=True) + eps).pow(p).sum(-1) for g in ci).mean(0).sum()
                where = " and over ".join(MINIMALITY_AXES[a] for a in axes)
                sym = {"sum": "Σ", "mean": "mean"}[op]
                sub = "_".join({0: "batch", 1: "inst"}[a] for a in axes)
                hint = (
                    f"your penalty {'sums' if op == 'sum' else 'averages'} the importances over {where} before the "
                    f"power, ({sym}_{sub} g + eps)^p: the power applies to every importance g on its own (each "
                    "example, instance and subcomponent), and the reductions come after it: Σ_inst mean_batch Σ_l "
                    "Σ_c (g + eps)^p"
                )
                out.append(("reduced_before_power", hint, value))
    return out


def faithfulness_norm_difference(weights: list[Tensor], U: list[Tensor], V: list[Tensor]) -> Mistakes:
    """(‖W_l‖ - ‖U_l V_l‖)² per instance (Frobenius norms of each matrix) or over all instances at once, summed
    over the matrices, divided by N."""
    n = sum(W[0].numel() for W in weights)
    hint = (
        "your loss squares the difference of the norms, (‖W_l‖ - ‖U_l V_l‖)², where the norm of the difference "
        "W_l - U_l V_l belongs: ‖W_l - U_l V_l‖² (every entry of W_l - U_l V_l squared and summed). Two matrices "
        "with the same norm can be far apart"
    )
    with torch.no_grad():
        pairs = [(W, u @ v) for W, u, v in zip(weights, U, V, strict=True)]
        per_inst = sum((torch.linalg.matrix_norm(W) - torch.linalg.matrix_norm(uv)).pow(2) for W, uv in pairs)
        whole = sum((torch.linalg.vector_norm(W) - torch.linalg.vector_norm(uv)).pow(2) for W, uv in pairs)
    return [("norm_difference", hint, (per_inst / n).sum()), ("norm_difference", hint, whole / n)]
