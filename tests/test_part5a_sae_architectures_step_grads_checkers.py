"""Proofs for part 5a's threshold-gradient slips (`tests.part5a_sae_architectures_step_grads`) and the forward
entries added with them: grad_output reduced to one number, an extra ∓1[x > θ]·grad_output term, JumpReLU's factor θ
pooled over an axis, the Heaviside mask decoded instead of acts_post, and the decoder used as the TopK encoder."""

from __future__ import annotations

import einops
import pytest
import torch
import torch.nn.functional as F

import solutions.part5a_sae_architectures as A
import tests.part5a_sae_architectures as C
from tests.proving import assert_fails


def _rect(u):
    return (u.abs() < 0.5).to(u.dtype)


def _heaviside(reduce):
    class _H(A.Heaviside):
        @staticmethod
        def backward(ctx, g):
            x, t = ctx.saved_tensors
            return torch.zeros_like(x), -_rect((x - t) / ctx.bandwidth) / ctx.bandwidth * reduce(g), None

    return _H


@pytest.mark.parametrize("reduce", [lambda g: g.sum(), lambda g: g.mean()], ids=["sum", "mean"])
def test_heaviside_grad_output_reduced_is_named(reduce):
    failure = assert_fails(C.test_heaviside, _heaviside(reduce), "grad_output_reduced")
    assert "each entry uses its own grad_output" in failure.hint and "clamp" not in failure.hint


def _jumprelu(theta_grad):
    class _J(A.JumpReLU):
        @staticmethod
        def backward(ctx, g):
            x, t = ctx.saved_tensors
            K = _rect((x - t) / ctx.bandwidth)
            return (x > t).to(x.dtype) * g, theta_grad(x, t, ctx.bandwidth, K, g), None

    return _J


@pytest.mark.parametrize("sign", [-1, 1])
def test_jumprelu_relu_theta_term_is_named(sign):
    extra = _jumprelu(lambda x, t, bw, K, g: -(t / bw) * K * g + sign * (x > t).to(x.dtype) * g)
    failure = assert_fails(C.test_jumprelu, extra, "relu_theta_term")
    assert "ReLU(x - θ)" in failure.hint and ("-1[x > θ]" if sign < 0 else "+1[x > θ]") in failure.hint


@pytest.mark.parametrize(
    "pool, words",
    [(lambda t: t.mean(), "θ.mean() over every element"), (lambda t: t.amax(-1, keepdim=True), "over axis 1")],
    ids=["mean", "max_axis1"],
)
def test_jumprelu_theta_pooled_is_named(pool, words):
    pooled = _jumprelu(lambda x, t, bw, K, g: -(pool(t) / bw) * K * g)
    failure = assert_fails(C.test_jumprelu, pooled, "theta_pooled")
    assert words in failure.message


def test_constant_fill_reading_lists_a_reduction():
    from tests.regions import _constant_fill

    e = torch.linspace(-20.3, 6.7, 40)
    bad = torch.arange(40) % 2 == 0
    a = torch.where(bad, torch.tensor(-747.1), e)
    text = _constant_fill(-747.1, a, e, bad, 1e-5)
    assert ".sum()/.mean()" in text and "clamp(max=" not in text  # a clamp doesn't reproduce it: not claimed


class _MaskDecodedJumpReLU(A.JumpReLUToySAE):
    def forward(self, h):
        pre = einops.einsum(h - self.b_dec, self.W_enc, "b i d, i d s -> b i s") + self.b_enc
        th = self.log_threshold.exp().expand_as(pre)
        bw = self.cfg.jumprelu_bandwidth
        acts, mask = A.JumpReLU.apply(pre, th, bw), A.Heaviside.apply(pre, th, bw)
        h_rec = einops.einsum(mask, self.W_dec_normalized, "b i s, i s d -> b i d") + self.b_dec
        d = {"L_reconstruction": (h_rec - h).pow(2).mean(-1), "L_sparsity": mask.sum(-1)}
        return d, (d["L_reconstruction"] + self.sparsity_coeff * d["L_sparsity"]).mean(0).sum(), acts, h_rec


def test_jumprelu_forward_mask_decoded_is_named():
    failure = assert_fails(C.test_jumprelu_forward, _MaskDecodedJumpReLU, "decoded_mask")
    assert "0/1 mask" in failure.hint


class _TiedTopK(A.TopKToySAE):
    def forward(self, h):
        pre = einops.einsum(h - self.b_dec, self.W_dec_normalized.mT, "b i d, i d s -> b i s") + self.b_enc
        r = F.relu(pre)
        top = r.topk(self.cfg.k, dim=-1)
        acts = torch.zeros_like(r).scatter(-1, top.indices, top.values)
        h_rec = einops.einsum(acts, self.W_dec_normalized, "b i s, i s d -> b i d") + self.b_dec
        d = {"L_reconstruction": (h_rec - h).pow(2).mean(-1), "L_sparsity": (acts > 0).to(h.dtype).sum(-1)}
        return d, d["L_reconstruction"].mean(0).sum(), acts, h_rec


def test_topk_decoder_as_encoder_is_named():
    failure = assert_fails(C.test_topk_forward, _TiedTopK, "decoder_as_encoder")
    assert "W_dec_normalized.mT" in failure.hint
