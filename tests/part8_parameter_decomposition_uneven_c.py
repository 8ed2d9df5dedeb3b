"""stochastic_reconstruction_losses on matrices with different numbers of subcomponents C_l.

The main check gives every matrix the same C, where a layerwise loss weighted by C_l / ΣC (or anything else that
depends on C_l alone) equals the plain mean over the L matrices. The contract lets every matrix have its own C, so
the checker runs the learner's function once more with C_l = 6, 11, 13, 15 (all different, none equal to another
count of the inputs) and names what a per-matrix weighting would give.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

import solutions.part8_parameter_decomposition as sol
from tests import part8_parameter_decomposition_error_measures as measures
from tests import part8_parameter_decomposition_inputs as inp
from tests import part8_parameter_decomposition_layer_reads as reads
from tests import part8_parameter_decomposition_mistakes as mis
from tests import part8_parameter_decomposition_named as fresh
from tests import part8_parameter_decomposition_output_size as out_size
from tests import part8_parameter_decomposition_probes as probes
from tests import part8_parameter_decomposition_recon_targets as targets
from tests import part8_parameter_decomposition_skipped_runs as skipped
from tests.checking import expect_matches, returned
from tests.mutants import call
from utils.part8_parameter_decomposition import WeightChain

UNEVEN_C = (6, 11, 13, 15)


def uneven_inputs(device: torch.device | str = "cpu") -> tuple[WeightChain, dict[str, list[Tensor]], Tensor]:
    """The main check's chain, x and delta masks, with U, V and masks redrawn for C_l = 6, 11, 13, 15."""
    chain, p, x = probes.recon_inputs(device)
    dims, batch, n_inst = probes.RECON_DIMS, x.shape[0], x.shape[1]
    rn, ru = probes._randn, probes._rand
    q = {
        "U": [rn(n_inst, dims[n + 1], c, seed=300 + n, scale=0.6, device=device) for n, c in enumerate(UNEVEN_C)],
        "V": [rn(n_inst, c, dims[n], seed=310 + n, scale=0.6, device=device) for n, c in enumerate(UNEVEN_C)],
        "masks": [
            ru(batch, n_inst, c, seed=320 + n, low=0.05, high=0.95, device=device) for n, c in enumerate(UNEVEN_C)
        ],
        "delta_masks": p["delta_masks"],
    }
    return chain, q, x


def recon_more(chain: WeightChain, p: dict[str, list[Tensor]], x: Tensor, right: Tensor) -> list:
    """The main check's later candidates: matrix 0's masks for all, relative errors, a weighted layerwise mean."""
    more = fresh.recon_first_masks(chain, p, x) + fresh.recon_relative(chain, p, x)
    more += measures.recon_error_measures(chain, p, x)  # norm, RMS, L1, max or 1 - cosine per example
    more += reads.recon_hidden_activation(chain, p, x)  # a hidden activation compared, not the output
    more += skipped.skipped_runs(chain, p, x)  # a matrix left out of the layerwise or the full run
    more += targets.recon_masked_target(chain, p, x)  # the fully masked run as the target: full loss 0
    return more + weighted_layerwise(chain, p, x, right)


def weighted_layerwise(chain: WeightChain, p: dict[str, list[Tensor]], x: Tensor, right: Tensor) -> list:
    """The layerwise loss as Σ_l w_l loss_l with w_l = q_l / Σ q for a per-matrix count q_l (C_l, d_in, d_out,
    the entries of W_l, the parameters of U_l and V_l), the full loss right."""
    with torch.no_grad():
        target, L = chain(x), len(chain.weights)
        losses = [(mis.masked_run(chain, p, x, {n})[0] - target).pow(2).mean((0, 2)).sum() for n in range(L)]
        C, Ws = [u.shape[-1] for u in p["U"]], chain.weights
        counts = {  # symbol: (what it counts, its value per matrix)
            "C_l": ("the subcomponents", C),
            "d_in_l": ("matrix l's input size", [W.shape[2] for W in Ws]),
            "d_out_l": ("matrix l's output size", [W.shape[1] for W in Ws]),
            "N_l": ("the entries of W_l, d_out · d_in", [W.shape[1] * W.shape[2] for W in Ws]),
            "P_l": (
                "the parameters of U_l and V_l",
                [c * (W.shape[1] + W.shape[2]) for c, W in zip(C, Ws, strict=True)],
            ),
        }
        out = []
        for sym, (name, q) in counts.items():
            value = sum(c * loss for c, loss in zip(q, losses, strict=True)) / sum(q)
            hint = (
                f"your layerwise losses are weighted by {sym} / Σ{sym.removesuffix('_l')} ({name}: a weighted "
                f"mean over the matrices): the layerwise loss is the plain mean over the L = {L} matrices, "
                "Σ_l loss_l / L, every matrix counted once whatever its size"
            )
            if sym == "C_l":
                hint += f" (with one C for every matrix the two agree; here C_l = {', '.join(map(str, UNEVEN_C))})"
            if not torch.allclose(value, right[1], rtol=1e-4, atol=1e-5):  # one C for all: C_l / ΣC is 1 / L
                out.append(("layerwise_weighted", hint, torch.stack([right[0], value])))
        return out


def recon_uneven_c(fn: Callable, device: torch.device | str) -> None:
    """Run fn on matrices with C_l = 6, 11, 13, 15 and compare (full, layerwise) with the reference."""
    chain, p, x = uneven_inputs(device)
    right = mis.recon_reference(chain, p, x)
    what = "stochastic_reconstruction_losses"
    q = {k: [t.clone() for t in v] for k, v in p.items()}
    out = returned(inp.call_naming_recon(fn, chain, q, x), what)
    got = torch.stack([torch.as_tensor(t).detach().reshape(()).to(x.dtype) for t in out])
    if torch.allclose(got, right, rtol=1e-4, atol=1e-5):
        return out_size.recon_output_size(fn, device)  # a chain whose output size is not its input size
    reference = call(
        sol.stochastic_reconstruction_losses,
        *(chain, p["U"], p["V"], x, p["masks"], p["delta_masks"]),
        pick=lambda o: torch.stack([o[0].detach(), o[1].detach()]),
    )
    hint = (
        "your losses are right when every matrix has the same number of subcomponents C but not with C_l = "
        f"{', '.join(str(c) for c in UNEVEN_C)} (each matrix its own C): something depends on C_l or assumes one C "
        "for all, e.g. a mean over subcomponents, a weighting of the matrices by their size, or matrix 0's C "
        "(U[0].shape) used for every matrix. Each loss is an MSE of the model's output, and the layerwise loss the "
        "plain mean over the matrices"
    )
    mistakes = weighted_layerwise(chain, p, x, right)
    expect_matches(
        got,
        right,
        f"(full, layerwise) with C_l = {UNEVEN_C}",
        mistakes,
        dims="loss",
        hint=hint,
        code="uneven_c",
        reference=reference,
    )
