"""Proofs for part 5a's probes added after the fresh8 held-out measurement (`tests.part5a_sae_architectures_probes`):
a step forward wrong on one side of θ, JumpReLU's θ-gradient divided by θ, a bandwidth given to one step function
only, L_sparsity without a θ-gradient (both causes listed), and the TopK latents chosen before b_enc or all decoded."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import solutions.part5a_sae_architectures as A
import tests.part5a_sae_architectures as checks
from tests.proving import assert_fails, assert_passes

rect = A.rectangle


def _step(forward_value, theta_grad):
    class Step(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, threshold, bandwidth):
            ctx.save_for_backward(x, threshold)
            ctx.bandwidth = bandwidth
            return forward_value(x, threshold)

        @staticmethod
        def backward(ctx, g):
            x, th = ctx.saved_tensors
            return torch.zeros_like(x), theta_grad(x, th, ctx.bandwidth) * g, None

    return Step


def test_heaviside_sign_forward():
    sign = _step(lambda x, th: (x - th).sign(), lambda x, th, bw: -rect((x - th) / bw) / bw)
    err = assert_fails(checks.test_heaviside, sign, "forward_below_threshold")
    assert "-1 wherever x < θ" in err.message


def test_heaviside_two_above():
    two = _step(lambda x, th: 2.0 * (x > th).to(x.dtype), lambda x, th, bw: -rect((x - th) / bw) / bw)
    assert_fails(checks.test_heaviside, two, "forward_above_threshold")


def _jumprelu(theta_grad):
    class J(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, threshold, bandwidth):
            ctx.save_for_backward(x, threshold)
            ctx.bandwidth = bandwidth
            return x * (x > threshold).to(x.dtype)

        @staticmethod
        def backward(ctx, g):
            x, th = ctx.saved_tensors
            return (x > th).to(x.dtype) * g, theta_grad(x, th, ctx.bandwidth) * g, None

    return J


def test_jumprelu_theta_divides():
    assert_fails(
        checks.test_jumprelu, _jumprelu(lambda x, th, bw: -rect((x - th) / bw) / (th * bw)), "inverse_theta_factor"
    )


def _jump_sae(jump_bw=None, heavi_bw=None, sparsity="heaviside"):
    def forward(self, h):
        pre = torch.einsum("bid,ids->bis", h - self.b_dec, self.W_enc) + self.b_enc
        th = self.log_threshold.exp().expand_as(pre)
        bw = self.cfg.jumprelu_bandwidth
        acts = A.JumpReLU.apply(pre, th, bw if jump_bw is None else jump_bw(self.cfg))
        h_rec = torch.einsum("bis,isd->bid", acts, self.W_dec_normalized) + self.b_dec
        Lr = (h_rec - h).pow(2).mean(-1)
        if sparsity == "shifted":  # H(pre - θ, 0): the same count, but θ is not Heaviside's threshold
            Ls = A.Heaviside.apply(pre - th, torch.zeros_like(pre), bw).sum(-1)
        else:
            Ls = A.Heaviside.apply(pre, th, bw if heavi_bw is None else heavi_bw(self.cfg)).sum(-1)
        return {"L_reconstruction": Lr, "L_sparsity": Ls}, (Lr + self.sparsity_coeff * Ls).mean(0).sum(), acts, h_rec

    return type("Heldout2JumpReLU", (A.JumpReLUToySAE,), {"forward": forward})


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"jump_bw": lambda cfg: cfg.jumprelu_init_threshold}, "jumprelu_bandwidth_init"),
        ({"heavi_bw": lambda cfg: cfg.jumprelu_init_threshold}, "heaviside_bandwidth_init"),
        ({"jump_bw": lambda cfg: 1.0}, "jumprelu_bandwidth_one"),
        ({"heavi_bw": lambda cfg: 1.0}, "heaviside_bandwidth_one"),
    ],
)
def test_jumprelu_forward_one_bandwidth_wrong(kwargs, code):
    assert_fails(checks.test_jumprelu_forward, _jump_sae(**kwargs), code)


def test_jumprelu_forward_shifted_heaviside_lists_both_causes():
    err = assert_fails(checks.test_jumprelu_forward, _jump_sae(sparsity="shifted"), "threshold_grad")
    assert "without Heaviside" in err.hint and "not passed as its threshold" in err.hint


def test_jumprelu_forward_reference_passes():
    assert_passes(checks.test_jumprelu_forward, _jump_sae())


def _topk(select_on_proj=False, decode_all=False):
    def forward(self, h):
        proj = torch.einsum("bid,ids->bis", h - self.b_dec, self.W_enc)
        post = F.relu(proj + self.b_enc)
        idx = (proj if select_on_proj else post).topk(self.cfg.k, dim=-1).indices
        acts = torch.zeros_like(post).scatter(-1, idx, post.gather(-1, idx))
        h_rec = torch.einsum("bis,isd->bid", post if decode_all else acts, self.W_dec_normalized) + self.b_dec
        Lr = (h_rec - h).pow(2).mean(-1)
        return {"L_reconstruction": Lr, "L_sparsity": (acts > 0).to(h.dtype).sum(-1)}, Lr.mean(0).sum(), acts, h_rec

    return type("Heldout2TopK", (A.TopKToySAE,), {"forward": forward})


def test_topk_chosen_before_b_enc():
    assert_fails(checks.test_topk_forward, _topk(select_on_proj=True), "topk_before_b_enc")


def test_topk_decodes_all_latents():
    assert_fails(checks.test_topk_forward, _topk(decode_all=True), "decoded_all_latents")


def test_topk_gather_scatter_passes():
    assert_passes(checks.test_topk_forward, _topk())
