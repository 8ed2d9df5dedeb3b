"""Proofs for part 5a after the fresh35 measurement: a JumpReLU θ-gradient divided by ε/2 (a constant factor 2 at
every bandwidth) is named as the bandwidth halved in the slope; a Heaviside window without the abs (one-sided) and one
scaled by θ are named; exp(r_mag) on the gate path instead of the magnitude path is named; dead_latent_fraction with
a mean-activation tolerance reads the tolerance's range back; the correct variants still pass."""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import solutions.part5a_sae_architectures as A
import tests.part5a_sae_architectures as C
from tests.proving import assert_fails


def _rect(u):
    return (u.abs() < 0.5).to(u.dtype)


def _heaviside(kernel):
    class H(A.Heaviside):
        @staticmethod
        def backward(ctx, grad_output):
            x, threshold = ctx.saved_tensors
            bw = ctx.bandwidth
            return torch.zeros_like(x), -kernel(x, threshold, bw) / bw * grad_output, None

    return H


def _jumprelu(divisor):
    class J(A.JumpReLU):
        @staticmethod
        def backward(ctx, grad_output):
            x, threshold = ctx.saved_tensors
            bw = ctx.bandwidth
            gt = -(threshold / divisor(bw)) * _rect((x - threshold) / bw) * grad_output
            return (x > threshold).to(x.dtype) * grad_output, gt, None

    return J


def test_jumprelu_half_bandwidth_slope_is_named():
    failure = assert_fails(C.test_jumprelu, _jumprelu(lambda bw: bw / 2), "theta_constant_factor")
    assert "ε/2 where ε belongs" in failure.hint and "2 ×" in failure.message


def test_heaviside_window_without_abs_is_one_sided():
    failure = assert_fails(
        C.test_heaviside, _heaviside(lambda x, t, bw: ((x - t) / bw < 0.5).to(x.dtype)), "window_one_sided"
    )
    assert "abs is missing" in failure.hint and "no cutoff" not in failure.hint


def test_heaviside_window_relative_to_theta_is_named():
    failure = assert_fails(
        C.test_heaviside, _heaviside(lambda x, t, bw: _rect((x - t) / (bw * t))), "window_scaled_by_theta"
    )
    assert "ε·θ" in failure.hint


def test_heaviside_round_window_passes():
    C.test_heaviside(_heaviside(lambda x, t, bw: (torch.round((x - t) / bw) == 0).to(x.dtype)), device="cpu")


def _gated(gate_scaled: bool):
    class G(A.GatedToySAE):
        def forward(self, h):
            proj = einops.einsum(h - self.b_dec, self.W_enc, "b i d, i d s -> b i s")
            scale = self.r_mag.exp()
            gate_pre = (proj * scale if gate_scaled else proj) + self.b_enc
            mag_pre = proj + self.b_mag if gate_scaled else proj * scale + self.b_mag
            acts = (gate_pre > 0).to(h.dtype) * F.relu(mag_pre)
            Wd = self.W_dec_normalized
            h_rec = einops.einsum(acts, Wd, "b i s, i s d -> b i d") + self.b_dec
            gp = F.relu(gate_pre)
            via = einops.einsum(gp, Wd.detach(), "b i s, i s d -> b i d") + self.b_dec.detach()
            d = {
                "L_reconstruction": (h_rec - h).pow(2).mean(-1),
                "L_sparsity": gp.sum(-1),
                "L_aux": (via - h).pow(2).mean(-1),
            }
            loss = (d["L_reconstruction"] + self.sparsity_coeff * d["L_sparsity"] + d["L_aux"]).mean(0).sum()
            return d, loss, acts, h_rec

    return G


def test_gated_r_mag_on_gate_path_is_named():
    failure = assert_fails(C.test_gated_forward, _gated(True), "r_mag_on_gate")
    assert "swapped" in failure.hint


def test_gated_right_paths_pass():
    C.test_gated_forward(_gated(False), device="cpu")


def test_dead_mean_activation_tolerance_is_read_back():
    def dead(acts):
        return (acts.mean(0) < 1e-2).to(acts.dtype).mean(-1)

    failure = assert_fails(C.test_dead_latent_fraction, dead, "dead_stat_threshold")
    assert "mean activation" in failure.hint and "between" in failure.hint


def test_dead_sum_over_batch_passes():
    C.test_dead_latent_fraction(lambda a: (a.sum(0) == 0).to(a.dtype).mean(-1), device="cpu")
