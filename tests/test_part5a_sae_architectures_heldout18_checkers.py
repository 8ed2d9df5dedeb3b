"""Proofs for part 5a after the fresh37 measurement: a step function whose forward leaves x's dtype (`.float()`,
`torch.where(mask, 1.0, 0.0)`) is caught by a float64 / float16 probe; auxk_loss with a tensor centred over d_in
for each example, or the error centred over the batch, is named; an FVE computed as the explained sum of squares
over the total (ESS / TSS) is named; the correct variants still pass."""

from __future__ import annotations

import einops
import torch

import solutions.part5a_sae_architectures as A
import tests.part5a_sae_architectures as C
from tests.proving import assert_fails, assert_passes


def _heaviside(fwd):
    class H(A.Heaviside):
        forward = staticmethod(fwd)

    return H


def _float_forward(ctx, x, threshold, bandwidth):
    ctx.save_for_backward(x, threshold)
    ctx.bandwidth = bandwidth
    return (x > threshold).float()


def _where_forward(ctx, x, threshold, bandwidth):
    ctx.save_for_backward(x, threshold)
    ctx.bandwidth = bandwidth
    return torch.where(x > threshold, 1.0, 0.0)


def test_heaviside_float32_output_is_named():
    for forward in (_float_forward, _where_forward):
        failure = assert_fails(C.test_heaviside, _heaviside(forward), "dtype")
        assert "torch.float64" in failure.message and "x.dtype" in failure.hint


def test_jumprelu_float16_upcast_is_named():
    class J(A.JumpReLU):
        @staticmethod
        def forward(ctx, x, threshold, bandwidth):
            ctx.save_for_backward(x, threshold)
            ctx.bandwidth = bandwidth
            return x * (x > threshold).float()  # float64 stays float64; float16 becomes float32

    failure = assert_fails(C.test_jumprelu, J, "dtype")
    assert "torch.float16" in failure.message


def test_step_functions_correct_pass():
    assert_passes(C.test_heaviside, A.Heaviside)
    assert_passes(C.test_jumprelu, A.JumpReLU)


def _auxk(change):
    def f(pre, residual, dead, Wd, k_aux):
        top = torch.where(dead, pre, -torch.inf).topk(k_aux, dim=-1)
        vals = torch.where(top.values.isfinite(), top.values, torch.zeros_like(top.values))
        acts = torch.zeros_like(pre).scatter(-1, top.indices, vals)
        r_hat = einops.einsum(acts, Wd, "b i s, i s d -> b i d")
        return change(residual, r_hat).pow(2).mean(-1)

    return f


def test_auxk_centred_over_d_in_is_named():
    centre = lambda t: t - t.mean(-1, keepdim=True)
    for change, what in (
        (lambda r, rh: centre(r) - rh, "the residual centred over d_in"),
        (lambda r, rh: r - centre(rh), "r̂ centred over d_in"),
        (lambda r, rh: centre(r - rh), "the error residual - r̂ centred over d_in"),
    ):
        failure = assert_fails(C.test_auxk_loss, _auxk(change), "centred_d_in")
        assert what in failure.hint


def test_auxk_centred_over_the_batch_is_named():
    failure = assert_fails(C.test_auxk_loss, _auxk(lambda r, rh: r - r.mean(0) - rh), "reconstruction_offset")
    assert "the residual centred over the batch" in failure.hint
    failure = assert_fails(C.test_auxk_loss, _auxk(lambda r, rh: (r - rh) - (r - rh).mean(0)), "reconstruction_offset")
    assert "centred over the batch" in failure.hint and "error" in failure.hint


def test_fve_explained_over_total_is_named():
    def fve(h, hr):
        mu = h.mean(0, keepdim=True)
        return (hr - mu).pow(2).sum((0, 2)) / (h - mu).pow(2).sum((0, 2))

    failure = assert_fails(C.test_fraction_variance_explained, fve, "explained_over_total")
    assert "ESS / TSS" in failure.hint and "intercept" in failure.hint
    assert_passes(C.test_fraction_variance_explained, A.fraction_variance_explained)
