"""Part 8 faithfulness_loss: a square root taken of the loss after another reduction slip, named.

The catalogue names a root of the whole loss (`rmse_total`), each instance's root summed (`rms`) and a norm left
unsquared; this is the root that comes with the instances reduced the other way: the root of the loss averaged
over the instances (a mean over instances, then torch.sqrt: an RMSE over everything). It is the formula with both
slips applied, evaluated on the checker's inputs (separated by `audit_catalogues`).
"""

from __future__ import annotations

from torch import Tensor

Mistakes = list[tuple[str, str, Tensor]]


def faithfulness_roots(weights: list[Tensor], U: list[Tensor], V: list[Tensor]) -> Mistakes:
    """The root of the instance mean of Σ_l ‖W_l - U_l V_l‖² / N."""
    n = sum(W[0].numel() for W in weights)
    per_inst = sum((W - u @ v).pow(2).sum((-2, -1)) for W, u, v in zip(weights, U, V, strict=True)) / n  # [inst]
    return [
        (
            "root_of_instance_mean",
            "your value is the square root of the loss averaged over the instances (a mean over the instances, then "
            ".sqrt(): an RMSE over everything): two slips. The loss is the mean squared error itself, "
            "no root, and it is summed over the instances: Σ_inst (1/N) Σ_l ‖W_l - U_l V_l‖²",
            per_inst.mean().sqrt(),
        ),
    ]
