"""stochastic_reconstruction_losses: the same masked runs, reduced with another per-example error measure.

The loss is the MSE over output dims and batch, summed over instances. A learner who reaches for another measure
of "how far the masked output is from the original" (the Euclidean distance, its RMS, an L1 or max error, one minus
the cosine similarity) runs the same masked models and reduces their error differently. The checker reduces its own
masked runs with each measure (per example, over the output dims; then the asked mean over the batch and sum over
instances) and names the measure that reproduces the learner's (full, layerwise). Squared sums and mean absolute
errors have their own codes in the main catalogue.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from tests import part8_parameter_decomposition_mistakes as mis
from utils.part8_parameter_decomposition import WeightChain

# name: (per-example error over output dims [batch inst d_out] -> [batch inst], what it is)
MEASURES: dict[str, tuple[Callable[[Tensor, Tensor], Tensor], str]] = {
    "norm": (
        lambda y, t: (y - t).norm(dim=-1),
        "the Euclidean norm of the error ‖y - chain(x)‖₂ per example (not squared, not divided by d_out)",
    ),
    "rms": (lambda y, t: (y - t).pow(2).mean(-1).sqrt(), "the root mean square error per example (square-rooted)"),
    "l1_sum": (lambda y, t: (y - t).abs().sum(-1), "the L1 error Σ |y - chain(x)| per example (not squared)"),
    "max_abs": (lambda y, t: (y - t).abs().amax(-1), "the largest absolute error per example (max over output dims)"),
    "cosine": (
        lambda y, t: 1 - F.cosine_similarity(y, t, dim=-1),
        "1 - the cosine similarity of y and chain(x) per example (a direction error: it ignores the size of y)",
    ),
}


def recon_error_measures(chain: WeightChain, p: dict[str, list[Tensor]], x: Tensor) -> list:
    """(code, hint, (full, layerwise)) for each measure, the batch averaged and the instances summed."""
    with torch.no_grad():
        target, L = chain(x), len(chain.weights)
        runs = [mis.masked_run(chain, p, x, set(range(L)))[0]] + [mis.masked_run(chain, p, x, {m})[0] for m in range(L)]
        out = []
        for name, (measure, what) in MEASURES.items():
            losses = [measure(y, target).mean(0).sum() for y in runs]
            value = torch.stack([losses[0], sum(losses[1:]) / L])
            hint = (
                f"your losses reduce the same masked runs with {what}: the loss is the mean squared error, "
                "(y - chain(x))² averaged over output dims and batch, summed over instances"
            )
            out.append((f"error_{name}", hint, value))
        return out
