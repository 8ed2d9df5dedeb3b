"""Proofs after the fresh43 fix round: self.model holding a weight tensor, a floor-rounded quotient in
W_dec_normalized, an instance left unfilled by generate_batch's loop, b_enc added twice, sparsity_coeff made a
column against [batch inst], and a lone dead latent skipped by resample_simple."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import solutions.part5_toy_saes as P
import tests.part5_toy_saes as checks
from tests.proving import assert_fails, assert_passes


class _ModelWeight(P.ToySAE):
    def __init__(self, cfg, model=None):
        super().__init__(cfg, model)
        self.model = model.W.requires_grad_(False) if model is not None else None


def test_model_weight_stored_named():
    err = assert_fails(checks.test_init, _ModelWeight, "model_not_module")
    assert "`W`" in err.message and "self.model = model" in err.hint


class _FloorDiv(P.ToySAE):
    @property
    def W_dec_normalized(self):
        W = self.W_dec
        return torch.div(W, W.norm(dim=-1, keepdim=True) + self.cfg.weight_normalize_eps, rounding_mode="floor")


def test_floor_quotient_named():
    err = assert_fails(checks.test_W_dec_normalized, _FloorDiv, "rounded_quotient")
    assert "floor" in err.message


class _LoopOneShort(P.ToySAE):
    def generate_batch(self, batch_size):
        x = self.model.generate_batch(batch_size)
        h = torch.zeros(batch_size, self.cfg.n_inst, self.cfg.d_in, device=x.device)
        for i in range(self.cfg.n_inst - 1):
            h[:, i] = x[:, i] @ self.model.W[i].T
        return h


def test_unfilled_last_instance_named():
    err = assert_fails(checks.test_generate_batch, _LoopOneShort, "instance_unfilled")
    assert "last instance" in err.message and "range(n_inst - 1)" in err.hint


def _forward(kind):
    class S(P.ToySAE):
        def forward(self, h):
            pre = torch.einsum("bid,ids->bis", h - self.b_dec, self.W_enc) + self.b_enc
            acts = (pre + self.b_enc if kind == "benc2" else pre).relu()
            h_rec = torch.einsum("bis,isd->bid", acts, self.W_dec_normalized) + self.b_dec
            Lr = F.mse_loss(h_rec, h, reduction="none").mean(-1)
            Ls = acts.abs().sum(-1)
            coeff = self.sparsity_coeff[:, None] if kind == "column" else self.sparsity_coeff
            loss = (Lr + coeff * Ls).mean(0).sum()
            return {"L_reconstruction": Lr, "L_sparsity": Ls}, loss, acts, h_rec

    return S


def test_b_enc_twice_and_coeff_column_named():
    assert_fails(checks.test_forward, _forward("benc2"), "b_enc_twice")
    err = assert_fails(checks.test_forward, _forward("column"), "coeff_column")  # column in a local `coeff`
    assert "`coeff` (sparsity_coeff as a column)" in err.message and "[None, :]" in err.hint


def _resample(min_dead):
    def resample(sae, frac, resample_scale):
        dead = (frac <= 0).all(dim=0)
        if int(dead.sum()) < min_dead:
            return
        d = torch.randn(int(dead.sum()), sae.cfg.d_in, device=sae.W_enc.device)
        d = d / d.norm(dim=-1, keepdim=True)
        sae.W_dec.data[dead] = d
        sae.W_enc.data.transpose(-1, -2)[dead] = d * resample_scale
        sae.b_enc.data[dead] = 0.0

    return resample


def test_lone_dead_latent_skipped_named():
    err = assert_fails(checks.test_resample_simple, _resample(2), "lone_dead_skipped")
    assert "exactly one dead latent" in err.message
    assert_passes(checks.test_resample_simple, _resample(1))  # a guard on no dead latent at all is fine
