"""Proofs for part 5a after the fresh31 measurement: a Heaviside θ-gradient divided by θ is read back as that ratio;
JumpReLU's b_enc added after the nonlinearity is named; auxk_loss's empty top-k slots filled with ones are named (and
the offset reading lists that cause); auxk_loss editing the caller's residual in place is caught."""

from __future__ import annotations

import einops
import torch

import solutions.part5a_sae_architectures as A
import tests.part5a_sae_architectures as C
from tests.proving import assert_fails


def _rect(u):
    return (u.abs() < 0.5).to(u.dtype)


class _HeavisideOverTheta(A.Heaviside):
    @staticmethod
    def backward(ctx, grad_output):
        x, threshold = ctx.saved_tensors
        window = _rect((x - threshold) / ctx.bandwidth)
        return torch.zeros_like(x), -window / ctx.bandwidth * grad_output / threshold, None


def test_heaviside_theta_grad_divided_by_theta_is_read_back():
    failure = assert_fails(C.test_heaviside, _HeavisideOverTheta, "theta_factor")
    assert "divided by θ" in failure.message and "ratio" in failure.message


class _BEncAfterJumpReLU(A.JumpReLUToySAE):
    def forward(self, h):
        pre = einops.einsum(h - self.b_dec, self.W_enc, "b i d, i d s -> b i s")
        theta = self.log_threshold.exp().expand_as(pre)
        bw = self.cfg.jumprelu_bandwidth
        acts = A.JumpReLU.apply(pre, theta, bw) + self.b_enc
        h_rec = einops.einsum(acts, self.W_dec_normalized, "b i s, i s d -> b i d") + self.b_dec
        d = {"L_reconstruction": (h_rec - h).pow(2).mean(-1), "L_sparsity": A.Heaviside.apply(pre, theta, bw).sum(-1)}
        loss = (d["L_reconstruction"] + self.sparsity_coeff * d["L_sparsity"]).mean(0).sum()
        return d, loss, acts, h_rec


def test_jumprelu_b_enc_after_nonlinearity_is_named():
    failure = assert_fails(C.test_jumprelu_forward, _BEncAfterJumpReLU, "relu_before_bias")
    assert "after the nonlinearity" in failure.hint


def _auxk(fill: float = 0.0, in_place: bool = False):
    def auxk_loss(pre, residual, dead, W_dec_normalized, k_aux):
        top = torch.where(dead, pre, -torch.inf).topk(k_aux, dim=-1)
        values = torch.where(top.values.isfinite(), top.values, torch.full_like(top.values, fill))
        acts = torch.zeros_like(pre).scatter(-1, top.indices, values)
        residual_hat = einops.einsum(acts, W_dec_normalized, "b i s, i s d -> b i d")
        if in_place:
            residual -= residual_hat
            return residual.pow(2).mean(-1)
        return (residual - residual_hat).pow(2).mean(-1)

    return auxk_loss


def test_auxk_empty_slots_filled_with_ones_is_named():
    failure = assert_fails(C.test_auxk_loss, _auxk(fill=1.0), "empty_slots_filled")
    assert "ones_like" in failure.hint and "times 1" in failure.hint


def test_auxk_empty_slots_filled_with_another_value_is_named():
    failure = assert_fails(C.test_auxk_loss, _auxk(fill=-0.5), "empty_slots_filled")
    assert "-0.5" in failure.hint


def test_auxk_residual_edited_in_place_is_caught():
    failure = assert_fails(C.test_auxk_loss, _auxk(in_place=True), "in_place")
    assert "residual" in failure.message and "residual -= residual_hat" in failure.hint


def test_auxk_offset_reading_lists_the_fill_as_a_cause():
    import tests.part5a_sae_architectures_fitted as FIT

    torch.manual_seed(0)
    pre, residual = torch.randn(16, 2, 5), torch.randn(16, 2, 3)
    dead = torch.zeros(2, 5, dtype=torch.bool)
    dead[0, 1] = True
    W = torch.nn.functional.normalize(torch.randn(2, 5, 3), dim=-1)
    right = (residual - einops.einsum(torch.where(dead, pre, 0.0), W, "b i s, i s d -> b i d")).pow(2).mean(-1)
    c = torch.tensor([[0.3, -0.2, 0.1], [0.2, 0.4, -0.1]])  # a constant that is no fill times decoder rows
    e = residual - einops.einsum(torch.where(dead, pre, 0.0), W, "b i s, i s d -> b i d")
    out = (e - c).pow(2).mean(-1)
    ((code, hint, _),) = FIT.auxk_offset(out, pre, residual, dead, W, 2)
    assert code == "reconstruction_offset" and "non-zero value (ones_like / full)" in hint
    assert not torch.allclose(out, right)
