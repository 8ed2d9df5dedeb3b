"""stochastic_reconstruction_losses on a chain whose output size differs from its input size.

The main check's chain is an autoencoder (10 -> ... -> 10), where a mean over the output dims written as
Σ / x.shape[-1] (the input size) equals the right one. The contract takes any WeightChain, so the checker runs the
learner's function once more on a copy whose last matrix writes 5 dims (no other count of the inputs is 5) and names
what dividing by d_in gives.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

import solutions.part8_parameter_decomposition as sol
from tests import part8_parameter_decomposition_inputs as inp
from tests import part8_parameter_decomposition_mistakes as mis
from tests import part8_parameter_decomposition_probes as probes
from tests.checking import expect_matches, returned
from tests.mutants import call
from utils.part8_parameter_decomposition import WeightChain

D_OUT = 5


def wide_inputs(device: torch.device | str = "cpu") -> tuple[WeightChain, dict[str, list[Tensor]], Tensor]:
    """The main check's inputs with the last matrix (and its U, bias) redrawn to write D_OUT = 5 dims."""
    chain, p, x = probes.recon_inputs(device)
    n_inst, d_mid, C = x.shape[1], chain.weights[-1].shape[-1], p["U"][-1].shape[-1]
    weights = [*chain.weights[:-1], probes._randn(n_inst, D_OUT, d_mid, seed=400, scale=0.8, device=device)]
    biases = [*chain.biases[:-1], probes._randn(n_inst, D_OUT, seed=401, scale=0.3, device=device) + 0.1]
    wide = WeightChain(weights, biases, list(chain.activations), list(chain.names))
    p = {**p, "U": [*p["U"][:-1], probes._randn(n_inst, D_OUT, C, seed=402, scale=0.6, device=device)]}
    return wide, p, x


def recon_output_size(fn: Callable, device: torch.device | str) -> None:
    """Run fn on the chain with d_out = 5 ≠ d_in = 10 and compare (full, layerwise) with the reference."""
    chain, p, x = wide_inputs(device)
    right = mis.recon_reference(chain, p, x)
    q = {k: [t.clone() for t in v] for k, v in p.items()}
    out = returned(inp.call_naming_recon(fn, chain, q, x), "stochastic_reconstruction_losses")
    got = torch.stack([torch.as_tensor(t).detach().reshape(()).to(x.dtype) for t in out])
    if torch.allclose(got, right, rtol=1e-4, atol=1e-5):
        return
    d_in = x.shape[-1]
    reference = call(
        sol.stochastic_reconstruction_losses,
        *(chain, p["U"], p["V"], x, p["masks"], p["delta_masks"]),
        pick=lambda o: torch.stack([o[0].detach(), o[1].detach()]),
    )
    by_d_in = right * D_OUT / d_in  # Σ over the D_OUT outputs / d_in in place of the mean over outputs
    mistakes = [
        (
            "output_mean_by_d_in",
            f"your losses divide the squared errors summed over the output dims by the INPUT size d_in = {d_in} "
            f"(x.shape[-1]), not by the output size d_out = {D_OUT}: the two agree on an autoencoder but not on this "
            "chain. Take the mean over the model's output dims (.mean over the last axis of chain(x)'s error)",
            by_d_in,
        )
    ]
    expect_matches(
        got,
        right,
        f"(full, layerwise) on a chain with output size {D_OUT} ≠ input size {d_in}",
        mistakes,
        dims="loss",
        hint=f"observed: your losses are right on the main chain (output size = input size = {d_in}) but not on a "
        f"copy whose last matrix writes {D_OUT} dims: something assumes the output has the input's size, e.g. a "
        "divisor or a shape taken from x rather than from the output",
        code="output_size",
        reference=reference,
    )
