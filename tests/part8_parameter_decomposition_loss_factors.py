"""Part 8 stochastic_reconstruction_losses: both losses off, each by its own reduction factor, named together.

When only one of (full, layerwise) is wrong, or both by one common factor, the checker names the factor already.
Two slips at once (e.g. a sum over output dims in the shared loss and a sum over the L matrices in the layerwise
average) leave the two losses off by different factors: each is read with `diag.scalar_hint` (sums over axes the
loss averages, means over axes it sums; for the layerwise loss the L matrices are an averaged axis too) and the
reading is claimed only when both factors are named and the pair matches no catalogue mutant.
"""

from __future__ import annotations

import torch
from torch import Tensor

from tests import part8_parameter_decomposition_diagnosis as diag
from tests import part8_parameter_decomposition_uneven_c as uneven
from utils.part8_parameter_decomposition import WeightChain

Mistakes = list[tuple[str, str, Tensor]]


def recon_more(
    chain: WeightChain, p: dict, x: Tensor, right: Tensor, mistakes: Mistakes, losses: tuple[Tensor, Tensor]
) -> Mistakes:
    """`uneven.recon_more`, then the two-factor reading of the learner's (full, layerwise)."""
    more = uneven.recon_more(chain, p, x, right)
    got = torch.stack([losses[0].detach(), losses[1].detach()])
    known = [m for *_, m in mistakes + more]
    off = [not torch.allclose(got[i], right[i], rtol=1e-4, atol=1e-5) for i in range(2)]
    if not all(off) or any(torch.allclose(got, m, rtol=1e-4, atol=1e-5) for m in known):
        return more
    if diag.common_factor(got, right) is not None:
        return more
    batch, n_inst, d_out = chain(x).shape
    means, sums, L = {"output dims": d_out, "the batch": batch}, {"instances": n_inst}, len(p["U"])
    full = diag.scalar_hint(got[0], right[0], means, sums)
    layerwise = diag.scalar_hint(got[1], right[1], {**means, f"the L = {L} matrices": L}, sums)
    if full is None or layerwise is None or full[0] != "scale" or layerwise[0] != "scale":
        return more
    hint = (
        f"both losses are off, each by its own factor: the full loss, {full[1]} The layerwise loss, {layerwise[1]} "
        "Each loss is the MSE over output dims and batch, summed over instances; the layerwise one is the mean of "
        "the L single-matrix losses"
    )
    return [*more, ("loss_factors", hint, got)]


recon_uneven_c = uneven.recon_uneven_c  # the checker reaches both reconstruction readings through this module
