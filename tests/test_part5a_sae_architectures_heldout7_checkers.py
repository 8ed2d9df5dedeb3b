"""Proofs for part 5a's diagnoses added after the fresh16 held-out measurement: Heaviside's θ-gradient with no window
(told from u multiplied by ε by inputs far below θ), a one-sided JumpReLU window described by its edges, a
θ-gradient averaged over the batch and broadcast back, AuxK's arithmetic mask (nothing decoded) and its mean over the
batch, FVE's residual from the centred h, recovery's cosines summed over the latents."""

from __future__ import annotations

import torch

import solutions.part5a_sae_architectures as A
import tests.part5a_sae_architectures as C
from tests.proving import assert_fails

rect = A.rectangle


def _step(base: type, backward_th, forward=None) -> type:
    """`base` (Heaviside or JumpReLU) with its θ-gradient replaced by backward_th(x, θ, ε, g)."""

    def backward(ctx, g):
        x, th = ctx.saved_tensors
        grad_x = base.backward(ctx, g)[0]
        return grad_x, backward_th(x, th, ctx.bandwidth, g), None

    return type("Fresh16Step", (base,), {"backward": staticmethod(backward)})


def test_heaviside_no_window_is_not_u_times_eps():
    failure = assert_fails(C.test_heaviside, _step(A.Heaviside, lambda x, th, bw, g: -g / bw), "kernel_shape")
    assert "no cutoff" in failure.hint and "· ε" not in failure.hint


def test_heaviside_u_times_eps_still_named():
    failure = assert_fails(C.test_heaviside, _step(A.Heaviside, lambda x, th, bw, g: -rect((x - th) * bw) / bw * g),
                           "one_change")  # fmt: skip
    assert "* bw" in failure.hint


def test_jumprelu_one_sided_window_by_its_edges():
    def th_grad(x, th, bw, g):
        return -(th / bw) * (((x - th) > -bw) & ((x - th) <= 0)).to(x.dtype) * g

    failure = assert_fails(C.test_jumprelu, _step(A.JumpReLU, th_grad), "kernel_shape")
    assert "between -0.1 and 0" in failure.hint and "below θ" in failure.hint and "one-sided" in failure.hint
    assert "2·ε" not in failure.hint


def test_heaviside_grad_averaged_over_batch():
    def th_grad(x, th, bw, g):
        return (-rect((x - th) / bw) / bw * g).mean(0, keepdim=True).expand_as(x)

    failure = assert_fails(C.test_heaviside, _step(A.Heaviside, th_grad), "reduced_broadcast")
    assert "averaged over axis 0" in failure.message


def test_auxk_arithmetic_mask_nothing_decoded():
    def auxk(pre, residual, dead, W_dec, k_aux):
        d = dead.to(pre.dtype)
        top = (pre * d + (1 - d) * (-torch.inf)).topk(k_aux, dim=-1)
        vals = torch.where(top.values.isfinite(), top.values, torch.zeros_like(top.values))
        acts = torch.zeros_like(pre).scatter(-1, top.indices, vals)
        return (residual - torch.einsum("bis,isd->bid", acts, W_dec)).pow(2).mean(-1)

    failure = assert_fails(C.test_auxk_loss, auxk, "nothing_decoded")
    assert "NaN" in failure.hint


def test_auxk_mean_over_batch():
    def auxk(pre, residual, dead, W_dec, k_aux):
        top = torch.where(dead, pre, -torch.inf).topk(k_aux, dim=-1)
        acts = torch.zeros_like(pre).scatter(-1, top.indices, top.values.nan_to_num(neginf=0.0))
        return (residual - torch.einsum("bis,isd->bid", acts, W_dec)).pow(2).mean(0)

    failure = assert_fails(C.test_auxk_loss, auxk, "reduced_wrong_axis")
    assert "(inst, d_in)" in failure.message and "over batch (dim 0)" in failure.hint


def test_fve_residual_from_centred_h():
    def fve(h, h_rec):
        hc = h - h.mean(0, keepdim=True)
        return 1 - (hc - h_rec).pow(2).sum((0, 2)) / hc.pow(2).sum((0, 2))

    assert_fails(C.test_fraction_variance_explained, fve, "residual_centred")


def test_recovery_cosines_summed_over_latents():
    def rec(W_features, W_dec):
        f = W_features / (W_features.norm(dim=1, keepdim=True) + 1e-8)
        d = W_dec / (W_dec.norm(dim=-1, keepdim=True) + 1e-8)
        return torch.einsum("isd,idf->if", d, f)

    assert_fails(C.test_feature_recovery, rec, "latents_summed")
