"""Proofs for part 5a's diagnoses added after the fresh19 held-out measurement (second round): L_aux's ingredients
named (ReLU(π_mag) decoded), a soft sigmoid gate, a threshold gradient's factor F in -(F/ε)·K((x - θ)/ε) named (x - θ
for θ) and its power of ε (divided by ε twice, or not at all), TopK values written into the first k latents, and a
TopK L_sparsity summed over the batch and broadcast back."""

from __future__ import annotations

import torch

import solutions.part5a_sae_architectures as A
import tests.part5a_sae_architectures as C
from tests.proving import assert_fails, assert_passes

rect = A.rectangle


def _gated(aux_in: str = "gate", gate: str = "step") -> type:
    def forward(self, h):
        proj = torch.einsum("bid,ids->bis", h - self.b_dec, self.W_enc)
        gate_pre, mag_pre = proj + self.b_enc, proj * self.r_mag.exp() + self.b_mag
        switch = torch.sigmoid(gate_pre) if gate == "sigmoid" else (gate_pre > 0).to(h.dtype)
        acts = switch * mag_pre.relu()
        W = self.W_dec_normalized
        h_rec = torch.einsum("bis,isd->bid", acts, W) + self.b_dec
        decoded = mag_pre.relu() if aux_in == "mag" else gate_pre.relu()
        via = torch.einsum("bis,isd->bid", decoded, W.detach()) + self.b_dec.detach()
        ld = {
            "L_reconstruction": (h_rec - h).pow(2).mean(-1),
            "L_sparsity": gate_pre.relu().sum(-1),
            "L_aux": (via - h).pow(2).mean(-1),
        }
        loss = (ld["L_reconstruction"] + self.sparsity_coeff * ld["L_sparsity"] + ld["L_aux"]).mean(0).sum()
        return ld, loss, acts, h_rec

    return type("Fresh19Gated", (A.GatedToySAE,), {"forward": forward})


def test_gated_aux_decodes_magnitude():
    failure = assert_fails(C.test_gated_forward, _gated(aux_in="mag"), "aux_decodes_mag")
    assert "ReLU(π_mag)" in failure.hint


def test_gated_soft_sigmoid_gate():
    failure = assert_fails(C.test_gated_forward, _gated(gate="sigmoid"), "sigmoid_gate")
    assert "sigmoid(π_gate)" in failure.hint


def _step(base: type, backward_th) -> type:
    def backward(ctx, g):
        x, th = ctx.saved_tensors
        return base.backward(ctx, g)[0], backward_th(x, th, ctx.bandwidth, g), None

    return type("Fresh19Step", (base,), {"backward": staticmethod(backward)})


def test_heaviside_divided_by_eps_twice():
    cls = _step(A.Heaviside, lambda x, th, bw, g: -rect((x - th) / bw) / bw**2 * g)
    failure = assert_fails(C.test_heaviside, cls, "epsilon_power")
    assert "F = 1/ε" in failure.message and "twice" in failure.hint


def test_jumprelu_divided_by_eps_twice():
    cls = _step(A.JumpReLU, lambda x, th, bw, g: -th * rect((x - th) / bw) / bw**2 * g)
    failure = assert_fails(C.test_jumprelu, cls, "epsilon_power")
    assert "F = θ/ε" in failure.message


def test_heaviside_constant_ten_is_not_a_power_of_eps():
    """10 × the expected at ε = 0.1 and at ε = 0.4 too: a constant, not 1/ε (the second bandwidth tells)."""
    cls = _step(A.Heaviside, lambda x, th, bw, g: -10 * rect((x - th) / bw) / bw * g)
    failure = assert_fails(C.test_heaviside, cls, "scale")
    assert "1/ε" not in failure.hint


def test_heaviside_factor_u_named():
    cls = _step(A.Heaviside, lambda x, th, bw, g: -((x - th) / bw) * rect((x - th) / bw) / bw * g)
    failure = assert_fails(C.test_heaviside, cls, "theta_factor")
    assert "F = (x - θ)/ε" in failure.message


def test_jumprelu_factor_x_minus_theta():
    cls = _step(A.JumpReLU, lambda x, th, bw, g: -((x - th) / bw) * rect((x - th) / bw) * g)
    failure = assert_fails(C.test_jumprelu, cls, "theta_factor")
    assert "F = x - θ" in failure.message and "is θ, not x - θ" in failure.hint


def _topk(first_slots: bool = False, batch_sum: bool = False) -> type:
    def forward(self, h):
        pre = (torch.einsum("bid,ids->bis", h - self.b_dec, self.W_enc) + self.b_enc).relu()
        top = pre.topk(self.cfg.k, dim=-1)
        if first_slots:
            acts = torch.cat([top.values, torch.zeros_like(pre[..., self.cfg.k :])], -1)
        else:
            acts = torch.zeros_like(pre).scatter(-1, top.indices, top.values)
        h_rec = torch.einsum("bis,isd->bid", acts, self.W_dec_normalized) + self.b_dec
        sp = (acts > 0).to(h.dtype).sum(-1)
        sp = sp.sum(0, keepdim=True).expand_as(sp) if batch_sum else sp
        ld = {"L_reconstruction": (h_rec - h).pow(2).mean(-1), "L_sparsity": sp}
        return ld, ld["L_reconstruction"].mean(0).sum(), acts, h_rec

    return type("Fresh19TopK", (A.TopKToySAE,), {"forward": forward})


def test_topk_values_in_the_first_slots():
    failure = assert_fails(C.test_topk_forward, _topk(first_slots=True), "values_not_scattered")
    assert "first 5 latents" in failure.message  # k = 5 is probed first


def test_topk_sparsity_summed_over_the_batch():
    failure = assert_fails(C.test_topk_forward, _topk(batch_sum=True), "reduced_broadcast")
    assert "summed over the batch axis" in failure.message


def test_topk_scatter_passes():
    assert_passes(C.test_topk_forward, _topk())


def test_feature_recovery_dot_averaged_over_d_in_names_d_in():
    """fresh21: the checker's sizes are all distinct (n_inst 3, d_in 4), so a 1/d_in factor names d_in, not inst."""
    fn = lambda W_features, W_dec: A.feature_recovery(W_features, W_dec) / W_features.shape[1]
    failure = assert_fails(C.test_feature_recovery, fn, "scale")
    assert "W_feat.shape[1]" in failure.hint and "inst" not in failure.hint


def test_fresh22_auxk_offset_and_dead_tolerance():
    """fresh22: the batch-mean residual added to auxk's reconstruction is fitted and named; a tolerance |a| < 1e-2
    in dead_latent_fraction is named with the range of thresholds it stands for; l0 as (acts > 0) is a correct
    variant on SAE activations (never negative)."""

    def auxk_loss(pre, residual, dead, W, k_aux):
        top = torch.where(dead, pre, -torch.inf).topk(k_aux, dim=-1)
        v = torch.where(top.values.isfinite(), top.values, torch.zeros_like(top.values))
        rh = torch.einsum("bis,isd->bid", torch.zeros_like(pre).scatter(-1, top.indices, v), W)
        return ((residual - rh - residual.mean(0, keepdim=True)) ** 2).mean(-1)

    err = assert_fails(C.test_auxk_loss, auxk_loss, "reconstruction_offset")
    assert "residual.mean(0)" in err.hint
    err = assert_fails(
        C.test_dead_latent_fraction, lambda a: (a.abs() < 1e-2).all(0).to(a.dtype).mean(-1), "zero_tolerance"
    )
    assert "tolerance" in err.hint
    assert_passes(C.test_l0_norm, lambda a: (a > 0).to(a.dtype).sum(-1).mean(0))
