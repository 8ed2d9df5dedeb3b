"""Proofs for part 5a's auxk_loss and metric slips named since the fresh32 round: pre[i] for pre[:, i] in a
per-instance loop (the size-mismatch error reads the dropped axis), dead latents decoded at activation 1, the FVE
residual with a precedence slip or a difference of squares, dead_latent_fraction on a reshape where a permute belongs,
and feature recovery as a Pearson correlation."""

from __future__ import annotations

import torch

import tests.part5a_sae_architectures as C
from tests.proving import assert_fails


def _auxk(mode):
    def auxk_loss(pre, residual, dead, W_dec_normalized, k_aux):
        if mode == "pre_i":
            outs = []
            for i in range(pre.shape[1]):
                p = pre[i]  # an example, not instance i
                top = torch.where(dead[i], p, -torch.inf).topk(k_aux, dim=-1)
                v = torch.where(top.values.isfinite(), top.values, torch.zeros_like(top.values))
                a = torch.zeros_like(p).scatter(-1, top.indices, v)
                outs.append((residual[:, i] - a @ W_dec_normalized[i]).pow(2).mean(-1))
            return torch.stack(outs, 1)
        top = torch.where(dead, pre, -torch.inf).topk(k_aux, dim=-1)
        v = top.values.isfinite().to(pre.dtype)  # activation 1: the values forgotten
        acts = torch.zeros_like(pre).scatter(-1, top.indices, v)
        return (residual - torch.einsum("bis,isd->bid", acts, W_dec_normalized)).pow(2).mean(-1)

    return auxk_loss


def _tot(h):
    return (h - h.mean(0, keepdim=True)).pow(2).sum((0, 2))


def test_auxk_pre_indexed_by_example_reads_the_dropped_axis():
    failure = assert_fails(C.test_auxk_loss, _auxk("pre_i"), "exception")
    assert "64 is batch" in failure.hint and "6 is n_inst" in failure.hint
    assert "pre[i] takes entry i of that first axis" in failure.hint and "pre[:, i]" in failure.hint


def test_auxk_unit_activations_are_named():
    failure = assert_fails(C.test_auxk_loss, _auxk("unit"), "auxk_unit_values")
    assert "activation 1" in failure.hint


def test_fve_precedence_slip_is_named():
    failure = assert_fails(
        C.test_fraction_variance_explained, lambda h, r: 1 - (h - r**2).sum((0, 2)) / _tot(h), "precedence_square"
    )
    assert "(h - h_rec) ** 2" in failure.hint


def test_fve_difference_of_squares_is_named():
    fve = lambda h, r: 1 - (h.pow(2) - r.pow(2)).sum((0, 2)) / _tot(h)
    failure = assert_fails(C.test_fraction_variance_explained, fve, "difference_of_squares")
    assert "subtract first, then square" in failure.hint


def test_dead_fraction_reshape_for_permute_is_named():
    def dead(acts):
        return (acts.reshape(acts.shape[1], acts.shape[0], acts.shape[2]) == 0).all(1).to(acts.dtype).mean(-1)

    failure = assert_fails(C.test_dead_latent_fraction, dead, "reshaped_not_permuted")
    assert ".permute(1, 0, 2)" in failure.hint


def test_recovery_pearson_correlation_is_named():
    def recovery(W_feat, W_dec):
        f, d = W_feat - W_feat.mean(1, keepdim=True), W_dec - W_dec.mean(-1, keepdim=True)
        f, d = f / f.norm(dim=1, keepdim=True), d / d.norm(dim=-1, keepdim=True)
        return torch.einsum("isd,idf->isf", d, f).amax(1)

    failure = assert_fails(C.test_feature_recovery, recovery, "correlation_not_cosine")
    assert "Pearson" in failure.hint
