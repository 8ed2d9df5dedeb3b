"""Proofs for part 5a's diagnoses added after the fresh13 held-out measurement: a scatter target built without
dtype (float64 probe), a metric returned in lower precision, a threshold-gradient window narrower than ε, the
shape of a wrong kernel described, dead read as "never an example's argmax", and AuxK's top-k along the instances."""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import solutions.part5a_sae_architectures as A
import tests.part5a_sae_architectures as C
from tests.proving import assert_fails

rect = A.rectangle


def _heaviside(window) -> type:
    class H(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, threshold, bandwidth):
            ctx.save_for_backward(x, threshold)
            ctx.bandwidth = bandwidth
            return (x > threshold).to(x.dtype)

        @staticmethod
        def backward(ctx, g):
            x, th = ctx.saved_tensors
            return torch.zeros_like(x), -window(x - th, ctx.bandwidth) / ctx.bandwidth * g, None

    return H


def test_heaviside_window_half_as_wide():
    failure = assert_fails(C.test_heaviside, _heaviside(lambda d, bw: rect(d / (bw / 2))), "window_width")
    assert "0.5·ε wide" in failure.hint


def test_heaviside_triangular_kernel_described():
    impl = _heaviside(lambda d, bw: (1 - (d / bw).abs()).clamp(min=0))
    assert "triangular" in assert_fails(C.test_heaviside, impl, "kernel_shape").hint


def test_topk_scatter_target_without_dtype():
    def forward(self, h):
        pre = F.relu(einops.einsum(h - self.b_dec, self.W_enc, "b i d, i d s -> b i s") + self.b_enc)
        top = pre.topk(self.cfg.k, dim=-1)
        acts = torch.zeros(pre.shape).scatter(-1, top.indices, top.values)
        h_rec = einops.einsum(acts, self.W_dec_normalized, "b i s, i s d -> b i d") + self.b_dec
        rec = (h_rec - h).pow(2).mean(-1)
        return {"L_reconstruction": rec, "L_sparsity": (acts > 0).to(h.dtype).sum(-1)}, rec.mean(0).sum(), acts, h_rec

    assert_fails(C.test_topk_forward, type("TopK", (A.TopKToySAE,), {"forward": forward}), "default_dtype")


def test_metrics_in_float16():
    assert_fails(C.test_l0_norm, lambda acts: (acts != 0).half().sum(-1).mean(0), "lower_precision")
    assert_fails(C.test_dead_latent_fraction, lambda acts: (acts == 0).all(0).half().mean(-1), "lower_precision")


def test_dead_as_never_the_largest():
    def impl(acts):
        return (~(F.one_hot(acts.argmax(-1), acts.shape[-1]).sum(0) > 0)).float().mean(-1)

    assert_fails(C.test_dead_latent_fraction, impl, "never_largest")


def test_auxk_topk_along_the_instances_lists_the_axis():
    def impl(pre, residual, dead, W_dec, k_aux):
        top = torch.where(dead, pre, -torch.inf).topk(k_aux, dim=1)
        vals = torch.where(top.values.isfinite(), top.values, torch.zeros_like(top.values))
        acts = torch.zeros_like(pre).scatter(1, top.indices, vals)
        return (residual - einops.einsum(acts, W_dec, "b i s, i s d -> b i d")).pow(2).mean(-1)

    assert "dim=1" in assert_fails(C.test_auxk_loss, impl, "all_dead_latents").hint


# fresh13, second round: inputs where n_inst ≠ d_in, and the metrics' named slips
def test_gated_r_mag_broadcast_without_the_d_in_axis_raises():
    def forward(self, h):
        x = h - self.b_dec
        gate_pre = einops.einsum(x, self.W_enc, "b i d, i d s -> b i s") + self.b_enc
        W_mag = self.W_enc * self.r_mag.exp()  # [inst d_sae] onto [inst d_in d_sae]: needs [:, None, :]
        acts = (gate_pre > 0).float() * F.relu(einops.einsum(x, W_mag, "b i d, i d s -> b i s") + self.b_mag)
        h_rec = einops.einsum(acts, self.W_dec_normalized, "b i s, i s d -> b i d") + self.b_dec
        via = einops.einsum(F.relu(gate_pre), self.W_dec_normalized.detach(), "b i s, i s d -> b i d")
        rec, aux, sp = (h_rec - h).pow(2).mean(-1), (via + self.b_dec.detach() - h).pow(2).mean(-1), gate_pre.relu()
        loss = (rec + self.sparsity_coeff * sp.sum(-1) + aux).mean(0).sum()
        return {"L_reconstruction": rec, "L_sparsity": sp.sum(-1), "L_aux": aux}, loss, acts, h_rec

    failure = assert_fails(C.test_gated_forward, type("G", (A.GatedToySAE,), {"forward": forward}), "exception")
    assert "4 is cfg.d_in" in failure.hint and "3 is cfg.n_inst" in failure.hint


def test_l0_over_active_examples_only():
    def impl(acts):
        c = (acts != 0).float().sum(-1)
        return c.sum(0) / (c > 0).float().sum(0).clamp(min=1)

    assert_fails(C.test_l0_norm, impl, "active_examples_only")


def test_fve_loop_indexing_the_batch_axis():
    def impl(h, h_rec):
        out = []
        for i in range(h.shape[1]):
            hi, ri = h[i], h_rec[i]
            out.append(1 - (hi - ri).pow(2).sum() / (hi - hi.mean(0)).pow(2).sum())
        return torch.stack(out)

    assert_fails(C.test_fraction_variance_explained, impl, "example_as_instance")


def test_recovery_with_instance_0_decoder():
    def impl(W_features, W_dec):
        Wf = W_features / (W_features.norm(dim=1, keepdim=True) + 1e-8)
        Wd = W_dec[0:1] / (W_dec[0:1].norm(dim=-1, keepdim=True) + 1e-8)
        return torch.einsum("isd,idf->isf", Wd.expand_as(W_dec), Wf).max(1).values

    assert "W_dec[0]" in assert_fails(C.test_feature_recovery, impl, "first_instance_only").hint


def test_recovery_norms_clamped_at_one():
    def impl(W_features, W_dec):
        Wf = W_features / W_features.norm(dim=1, keepdim=True).clamp(min=1)
        return torch.einsum("isd,idf->isf", F.normalize(W_dec, dim=-1), Wf).amax(1)

    assert "features' norms" in assert_fails(C.test_feature_recovery, impl, "norm_clamped_at_one").hint
