"""Proofs for `tests.part5a_sae_architectures_forward_causes`: a Gated L_aux decoded without b_enc, a JumpReLU
L_reconstruction penalising the error otherwise than squared, JumpReLU acts gated twice by Heaviside, an AuxK decoded
residual divided by k_aux, and TopK's cut-off taken at the largest value instead of the k-th."""

from __future__ import annotations

import einops
import pytest
import torch
import torch.nn.functional as F

import solutions.part5a_sae_architectures as A
import tests.part5a_sae_architectures as C
from tests.proving import assert_fails


def _enc(x, W_enc):
    return einops.einsum(x, W_enc, "batch inst d_in, inst d_in d_sae -> batch inst d_sae")


def _dec(acts, W_dec):
    return einops.einsum(acts, W_dec, "batch inst d_sae, inst d_sae d_in -> batch inst d_in")


def test_gated_aux_path_without_b_enc_is_named():
    def forward(self, h):
        proj = _enc(h - self.b_dec, self.W_enc)
        gate_pre, mag_pre = proj + self.b_enc, proj * self.r_mag.exp() + self.b_mag
        acts = (gate_pre > 0).to(h.dtype) * F.relu(mag_pre)
        h_rec = _dec(acts, self.W_dec_normalized) + self.b_dec
        via = _dec(F.relu(proj), self.W_dec_normalized.detach()) + self.b_dec.detach()  # b_enc left out here only
        ld = {
            "L_reconstruction": (h_rec - h).pow(2).mean(-1),
            "L_sparsity": F.relu(gate_pre).sum(-1),
            "L_aux": (via - h).pow(2).mean(-1),
        }
        loss = (ld["L_reconstruction"] + self.sparsity_coeff * ld["L_sparsity"] + ld["L_aux"]).mean(0).sum()
        return ld, loss, acts, h_rec

    assert_fails(C.test_gated_forward, type("Gated", (A.GatedToySAE,), {"forward": forward}), "aux_no_b_enc")


def _jumprelu_forward(penalty, gate_twice=False):
    def forward(self, h):
        pre = _enc(h - self.b_dec, self.W_enc) + self.b_enc
        bw, theta = self.cfg.jumprelu_bandwidth, self.log_threshold.exp().expand_as(pre)
        acts = A.JumpReLU.apply(pre, theta, bw)
        if gate_twice:
            acts = acts * A.Heaviside.apply(pre, theta, bw)
        h_rec = _dec(acts, self.W_dec_normalized) + self.b_dec
        ld = {"L_reconstruction": penalty(h_rec - h).mean(-1), "L_sparsity": A.Heaviside.apply(pre, theta, bw).sum(-1)}
        loss = (ld["L_reconstruction"] + self.sparsity_coeff * ld["L_sparsity"]).mean(0).sum()
        return ld, loss, acts, h_rec

    return type("JumpReLUSAE", (A.JumpReLUToySAE,), {"forward": forward})


@pytest.mark.parametrize(
    "penalty, code",
    [(torch.abs, "not_squared"), (lambda d: d.abs().pow(3), "error_power")],
    ids=["l1", "cube"],
)
def test_jumprelu_reconstruction_penalty_other_than_the_square_is_named(penalty, code):
    assert_fails(C.test_jumprelu_forward, _jumprelu_forward(penalty), code)


def test_jumprelu_gate_applied_twice_is_named_not_blamed_on_the_threshold():
    failure = assert_fails(
        C.test_jumprelu_forward, _jumprelu_forward(torch.square, gate_twice=True), "gate_applied_twice"
    )
    assert "pass exp(log_threshold)" not in failure.hint


def test_auxk_residual_divided_by_k_aux_is_named():
    def auxk_loss(pre, residual, dead, W_dec_normalized, k_aux):
        top = torch.where(dead, pre, -torch.inf).topk(k_aux, dim=-1)
        acts = torch.zeros_like(pre).scatter(-1, top.indices, torch.nan_to_num(top.values, neginf=0.0))
        return (residual - _dec(acts, W_dec_normalized) / k_aux).pow(2).mean(-1)

    assert_fails(C.test_auxk_loss, auxk_loss, "divided_by_k_aux")


def test_topk_cut_at_the_largest_value_lists_the_wrong_index():
    def forward(self, h):
        post = F.relu(_enc(h - self.b_dec, self.W_enc) + self.b_enc)
        acts = post * (post >= post.topk(self.cfg.k, dim=-1).values[..., :1])  # the largest, not the k-th
        h_rec = _dec(acts, self.W_dec_normalized) + self.b_dec
        rec = (h_rec - h).pow(2).mean(-1)
        return {"L_reconstruction": rec, "L_sparsity": (acts != 0).to(h.dtype).sum(-1)}, rec.mean(0).sum(), acts, h_rec

    failure = assert_fails(C.test_topk_forward, type("TopK", (A.TopKToySAE,), {"forward": forward}), "k_ignored")
    assert "values[..., :1]" in failure.hint
