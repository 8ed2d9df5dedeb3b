"""Proofs that four part 5a slips are named: the gated loss with sparsity_coeff on L_aux; a step function's
θ-gradient window of half-width ε // 2 (empty for ε < 2); TopK's argsort indices used as ranks; TopK's scatter with
the whole ReLU(pre) as src."""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import solutions.part5a_sae_architectures as A
import tests.part5a_sae_architectures as C
from tests.proving import assert_fails


class _CoeffOnAux(A.GatedToySAE):
    def forward(self, h):
        d, _, acts, h_rec = A.GatedToySAE.forward(self, h)
        per = d["L_reconstruction"] + d["L_sparsity"] + self.sparsity_coeff * d["L_aux"]
        return d, per.mean(0).sum(), acts, h_rec


def test_gated_coeff_on_aux_is_named():
    failure = assert_fails(C.test_gated_forward, _CoeffOnAux, "sparsity_coeff_on_aux")
    assert "L_aux" in failure.hint


def _floor_window(x, threshold, bw):
    return ((x - threshold).abs() < bw // 2).to(x.dtype)


class _HeavisideFloor(A.Heaviside):
    @staticmethod
    def backward(ctx, grad_output):
        x, threshold = ctx.saved_tensors
        bw = ctx.bandwidth
        return torch.zeros_like(x), -_floor_window(x, threshold, bw) / bw * grad_output, None


class _JumpReLUFloor(A.JumpReLU):
    @staticmethod
    def backward(ctx, grad_output):
        x, threshold = ctx.saved_tensors
        bw = ctx.bandwidth
        grad_x = (x > threshold).to(x.dtype) * grad_output
        return grad_x, -(threshold / bw) * _floor_window(x, threshold, bw) * grad_output, None


def test_floor_division_window_is_listed():
    for check, impl in ((C.test_heaviside, _HeavisideFloor), (C.test_jumprelu, _JumpReLUFloor)):
        failure = assert_fails(check, impl, "threshold_grad_zero")
        assert "ε // 2" in failure.hint and "floor division" in failure.hint


def _topk_forward(self, h, how):
    pre = einops.einsum(h - self.b_dec, self.W_enc, "b i d, i d s -> b i s") + self.b_enc
    post = F.relu(pre)
    if how == "argsort":
        acts = post * (post.argsort(-1, descending=True) < self.cfg.k).to(post.dtype)
    else:
        acts = torch.zeros_like(post)
        acts.scatter_(-1, post.topk(self.cfg.k, dim=-1).indices, post)
    h_rec = einops.einsum(acts, self.W_dec_normalized, "b i s, i s d -> b i d") + self.b_dec
    d = {"L_reconstruction": (h_rec - h).pow(2).mean(-1), "L_sparsity": (acts > 0).to(h.dtype).sum(-1)}
    return d, d["L_reconstruction"].mean(0).sum(), acts, h_rec


class _ArgsortRanks(A.TopKToySAE):
    def forward(self, h):
        return _topk_forward(self, h, "argsort")


class _ScatterWholeSrc(A.TopKToySAE):
    def forward(self, h):
        return _topk_forward(self, h, "scatter")


def test_topk_argsort_as_ranks_is_named():
    failure = assert_fails(C.test_topk_forward, _ArgsortRanks, "argsort_as_ranks")
    assert "argsort" in failure.hint


def test_topk_scatter_whole_src_is_named():
    failure = assert_fails(C.test_topk_forward, _ScatterWholeSrc, "scatter_whole_src")
    assert "gather" in failure.hint
