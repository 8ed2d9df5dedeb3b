"""Part 8 stochastic_reconstruction_losses: the target taken from a masked run, named.

With the fully masked run as the target (often detached, to "stop gradients through the target") the full loss is
exactly 0 and each layerwise run is compared with the masked run instead of the original model's output chain(x).
"""

from __future__ import annotations

import torch
from torch import Tensor

from tests import part8_parameter_decomposition_mistakes as mis
from utils.part8_parameter_decomposition import WeightChain

HINT = (
    "your full loss is 0 and your layerwise loss compares each single-matrix run with the run where every matrix is "
    "masked: the target is that masked run itself (perhaps detached). The target is the original model's output "
    "chain(x), computed with no mask (layer_fn left out), and both losses compare with it"
)


def recon_masked_target(chain: WeightChain, p: dict[str, list[Tensor]], x: Tensor) -> list:
    with torch.no_grad():
        L = len(chain.weights)
        target = mis.masked_run(chain, p, x, set(range(L)))[0]
        runs = [mis.masked_run(chain, p, x, {n})[0] for n in range(L)]
        layerwise = sum((y - target).pow(2).mean((0, 2)).sum() for y in runs) / L
        return [("target_masked_run", HINT, torch.stack([torch.zeros_like(layerwise), layerwise]))]
