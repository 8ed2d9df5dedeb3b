"""Proofs for part 5a after the fresh38 measurement: a step function whose x-gradient copies θ's pseudo-derivative
(the θ-gradient itself right) is named for that, not as swapped gradients; a real swap is still `grads_swapped`;
the JumpReLU SAE whose Heaviside gets θ.detach() gets a hint that lists the detach among the causes; Gated
magnitude/sparsity slips and AuxK selection slips (mixed top-k indices, |·| after masking) are named."""

from __future__ import annotations

import einops
import torch

import solutions.part5a_sae_architectures as A
import tests.part5a_sae_architectures as C
from tests.proving import assert_fails, assert_passes


def _rect(u):
    return (u.abs() < 0.5).to(u.dtype)


def _step(base, mode):
    class S(base):
        @staticmethod
        def backward(ctx, g):
            x, t = ctx.saved_tensors
            bw = ctx.bandwidth
            k = _rect((x - t) / bw) / bw
            factor = 1.0 if base is A.Heaviside else t
            dx = torch.zeros_like(x) if base is A.Heaviside else (x > t).to(x.dtype)
            if mode == "copy":
                return -factor * k * g, -factor * k * g, None
            return -factor * k * g, dx * g, None  # swapped

    return S


def test_x_gets_theta_pseudo_derivative_is_not_called_swapped():
    for base, name in ((A.Heaviside, "Heaviside"), (A.JumpReLU, "JumpReLU")):
        check = C.test_heaviside if base is A.Heaviside else C.test_jumprelu
        failure = assert_fails(check, _step(base, "copy"), "grad_x_theta_grad")
        assert name in failure.message and "not swapped" in failure.message and "θ only" in failure.hint


def test_real_swap_still_named():
    assert_fails(C.test_jumprelu, _step(A.JumpReLU, "swap"), "grads_swapped")


def test_step_functions_correct_pass():
    assert_passes(C.test_heaviside, A.Heaviside)
    assert_passes(C.test_jumprelu, A.JumpReLU)


def test_detached_theta_in_heaviside_hint_lists_detach():
    class S(A.JumpReLUToySAE):
        def forward(self, h):
            pre = einops.einsum(h - self.b_dec, self.W_enc, "b i d, i d s -> b i s") + self.b_enc
            th, bw = self.log_threshold.exp().expand_as(pre), self.cfg.jumprelu_bandwidth
            acts = A.JumpReLU.apply(pre, th, bw)
            h_rec = einops.einsum(acts, self.W_dec_normalized, "b i s, i s d -> b i d") + self.b_dec
            sp = A.Heaviside.apply(pre, th.detach(), bw).sum(-1)
            ld = {"L_reconstruction": (h_rec - h).pow(2).mean(-1), "L_sparsity": sp}
            return ld, (ld["L_reconstruction"] + self.sparsity_coeff * sp).mean(0).sum(), acts, h_rec

    failure = assert_fails(C.test_jumprelu_forward, S, "threshold_grad")
    assert "detach" in failure.hint


def _gated(mode):
    class G(A.GatedToySAE):
        def forward(self, h):
            proj = einops.einsum(h - self.b_dec, self.W_enc, "b i d, i d s -> b i s")
            gate, scale = proj + self.b_enc, self.r_mag.exp()
            mag = {"both": proj * scale + self.b_enc + self.b_mag, "bias": proj + self.b_mag * scale}.get(
                mode, proj * scale + self.b_mag
            )
            acts = (gate > 0).to(h.dtype) * mag.relu()
            wd = self.W_dec_normalized
            h_rec = einops.einsum(acts, wd, "b i s, i s d -> b i d") + self.b_dec
            via = einops.einsum(gate.relu(), wd.detach(), "b i s, i s d -> b i d") + self.b_dec.detach()
            sp = (gate.relu() * scale if mode == "sp" else gate.relu()).sum(-1)
            ld = {"L_reconstruction": (h_rec - h).pow(2).mean(-1), "L_sparsity": sp, "L_aux": (via - h).pow(2).mean(-1)}
            per = ld["L_reconstruction"] + self.sparsity_coeff * sp + ld["L_aux"]
            return ld, per.mean(0).sum(), acts, h_rec

    return G


def test_gated_magnitude_and_sparsity_slips_are_named():
    assert_fails(C.test_gated_forward, _gated("both"), "mag_both_biases")
    assert_fails(C.test_gated_forward, _gated("bias"), "r_mag_scales_b_mag")
    assert_fails(C.test_gated_forward, _gated("sp"), "sparsity_r_mag_scaled")
    assert_passes(C.test_gated_forward, _gated("right"))


def _auxk(mode):
    def f(pre, residual, dead, Wd, k_aux):
        masked = torch.where(dead, pre, -torch.inf)
        if mode == "mixed":
            idx = pre.topk(k_aux, dim=-1).indices
            vals = masked.topk(k_aux, dim=-1).values
            vals = torch.where(vals.isfinite(), vals, torch.zeros_like(vals))
        else:
            top = masked.abs().topk(k_aux, dim=-1)
            idx = top.indices
            vals = torch.where(top.values.isfinite(), pre.gather(-1, idx), torch.zeros_like(top.values))
        acts = torch.zeros_like(pre).scatter(-1, idx, vals)
        return (residual - einops.einsum(acts, Wd, "b i s, i s d -> b i d")).pow(2).mean(-1)

    return f


def test_auxk_selection_slips_are_named():
    assert_fails(C.test_auxk_loss, _auxk("mixed"), "auxk_mixed_indices")
    assert_fails(C.test_auxk_loss, _auxk("abs"), "auxk_abs_after_mask")
    assert_passes(C.test_auxk_loss, A.auxk_loss)
