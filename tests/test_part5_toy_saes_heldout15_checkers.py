"""Proofs for part 5 after the fresh36 measurement: an in-place `.add_(eps)` on the norm in W_dec_normalized (autograd's
error raised in the checker's backward, named as the learner's in-place edit) and sparsity_coeff multiplying the
whole per-example loss (the reconstruction term too)."""

from __future__ import annotations

import einops
import torch

import solutions.part5_toy_saes as P
import tests.part5_toy_saes as checks
from tests.proving import assert_fails


def test_norm_add_in_place():
    class AddInPlace(P.ToySAE):
        @property
        def W_dec_normalized(self):
            W = self.W_dec
            return W / W.norm(dim=-1, keepdim=True).add_(self.cfg.weight_normalize_eps)

    failure = assert_fails(checks.test_W_dec_normalized, AddInPlace, "inplace_autograd")
    assert "in-place" in failure.message and "norm" in failure.message
    assert "norm + eps" in failure.hint


def test_loss_in_place_after_relu():
    class ReluInPlace(P.ToySAE):
        def forward(self, h):
            acts = torch.relu(einops.einsum(h - self.b_dec, self.W_enc, "b i d, i d s -> b i s") + self.b_enc)
            h_rec = einops.einsum(acts, self.W_dec_normalized, "b i s, i s d -> b i d") + self.b_dec
            L_rec = (h_rec - h).pow(2).mean(-1)
            L_sp = acts.abs().sum(-1)
            loss = (L_rec + self.sparsity_coeff * L_sp).mean(0).sum()
            acts.mul_(1.0)  # edits ReLU's output, which relu's backward needs
            return {"L_reconstruction": L_rec, "L_sparsity": L_sp}, loss, acts, h_rec

    failure = assert_fails(checks.test_forward, ReluInPlace, "inplace_autograd")
    assert "in-place" in failure.message


def test_coeff_multiplies_whole_loss():
    class Whole(P.ToySAE):
        def forward(self, h):
            acts = torch.relu(einops.einsum(h - self.b_dec, self.W_enc, "b i d, i d s -> b i s") + self.b_enc)
            h_rec = einops.einsum(acts, self.W_dec_normalized, "b i s, i s d -> b i d") + self.b_dec
            L_rec = (h_rec - h).pow(2).mean(-1)
            L_sp = acts.abs().sum(-1)
            loss = (self.sparsity_coeff * (L_rec + L_sp)).mean(0).sum()
            return {"L_reconstruction": L_rec, "L_sparsity": L_sp}, loss, acts, h_rec

    failure = assert_fails(checks.test_forward, Whole, "coeff_on_reconstruction")
    assert "multiplies the reconstruction term too" in failure.message
