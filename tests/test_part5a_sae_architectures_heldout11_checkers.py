"""Proofs for part 5a's diagnoses added after the fresh23 held-out measurement: a metric pooled over the instances
named as such (not as instance 0 used for all: the dead-latent inputs no longer give instance 0 the mean fraction),
FVE's total squared after summing over d_in, and AuxK's dead latents chosen wrongly (the k_aux smallest, or example
0's choice for the whole batch), now exposed by three instances with more dead latents than k_aux."""

from __future__ import annotations

import torch

import solutions.part5a_sae_architectures as A
import tests.part5a_sae_architectures as C
from tests.proving import assert_fails, assert_passes


def test_dead_fraction_pooled_over_instances():
    impl = lambda a: (a == 0).all(0).to(a.dtype).mean().expand(a.shape[1])
    failure = assert_fails(C.test_dead_latent_fraction, impl, "pooled_over_instances")
    assert "mean over the instances" in failure.message and "instance 0's value" not in failure.hint


def test_l0_pooled_over_instances():
    impl = lambda a: (a != 0).to(a.dtype).sum(-1).mean().expand(a.shape[1])
    assert_fails(C.test_l0_norm, impl, "pooled_over_instances")


def test_fve_total_square_of_summed_std():
    impl = lambda h, hr: 1 - (h - hr).pow(2).mean(0).sum(-1) / h.std(0).sum(-1).pow(2)
    failure = assert_fails(C.test_fraction_variance_explained, impl, "fve_total_squared_sum")
    assert "(Σ_d std_d)²" in failure.message and "times batch" in failure.message


def _auxk(choice: str):
    def auxk_loss(pre, residual, dead, W, k_aux):
        if choice == "smallest":
            top = torch.where(dead, pre, torch.inf).topk(k_aux, dim=-1, largest=False)
            idx, values = top.indices, top.values
        else:  # example 0's indices for every example
            masked = torch.where(dead, pre, -torch.inf)
            idx = masked[:1].topk(k_aux, dim=-1).indices.expand(pre.shape[0], -1, -1)
            values = masked.gather(-1, idx)
        values = torch.where(values.isfinite(), values, torch.zeros_like(values))
        acts = torch.zeros_like(pre).scatter(-1, idx, values)
        return (residual - torch.einsum("bis,isd->bid", acts, W)).pow(2).mean(-1)

    return auxk_loss


def test_auxk_smallest_dead():
    failure = assert_fails(C.test_auxk_loss, _auxk("smallest"), "smallest_dead")
    assert "largest=False" in failure.hint


def test_auxk_first_example_choice():
    failure = assert_fails(C.test_auxk_loss, _auxk("first"), "first_example_choice")
    assert "example 0" in failure.hint


def test_reference_metrics_still_pass():
    for check, fn in (
        (C.test_dead_latent_fraction, A.dead_latent_fraction),
        (C.test_l0_norm, A.l0_norm),
        (C.test_fraction_variance_explained, A.fraction_variance_explained),
        (C.test_auxk_loss, A.auxk_loss),
    ):
        assert_passes(check, fn)
