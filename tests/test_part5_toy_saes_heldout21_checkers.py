"""Proofs for part 5's diagnoses added after the fresh41 held-out measurement: W_dec_normalized's eps read back from
the rows (norm - eps), generate_batch's per-instance loop indexing the batch axis (x[i] for x[:, i]), forward adding
back instance 0's b_dec for every instance, and resample_simple's directions drawn as columns then reshaped."""

from __future__ import annotations

import torch

import solutions.part5_toy_saes as P
import tests.part5_toy_saes as checks
from tests.proving import assert_fails


def _subclass(name, fn, prop=False):
    return type("S", (P.ToySAE,), {name: property(fn) if prop else fn})


def test_eps_subtracted_is_named():
    def minus(self):
        return self.W_dec / (self.W_dec.norm(dim=-1, keepdim=True) - self.cfg.weight_normalize_eps)

    err = assert_fails(checks.test_W_dec_normalized, _subclass("W_dec_normalized", minus, True), "eps_sign")
    assert "norm - eps" in err.message


def test_batch_axis_indexed_in_loop_is_named():
    def loop(self, batch_size):
        x = self.model.generate_batch(batch_size)
        return torch.stack([x[i] @ self.model.W[i].T for i in range(self.cfg.n_inst)], dim=1)

    err = assert_fails(checks.test_generate_batch, _subclass("generate_batch", loop), "batch_axis_indexed")
    assert "n_inst" in err.message and "x[:, i]" in err.hint


def test_first_instance_b_dec_added_back_is_named():
    def forward(self, h):
        acts = torch.relu(torch.einsum("bid,ids->bis", h - self.b_dec, self.W_enc) + self.b_enc)
        h_rec = torch.einsum("bis,isd->bid", acts, self.W_dec_normalized) + self.b_dec[0]
        L_rec = (h_rec - h).pow(2).mean(-1)
        L_sp = acts.abs().sum(-1)
        loss = (L_rec + self.sparsity_coeff * L_sp).mean(0).sum()
        return {"L_reconstruction": L_rec, "L_sparsity": L_sp}, loss, acts, h_rec

    err = assert_fails(checks.test_forward, _subclass("forward", forward), "b_dec0_added")
    assert "b_dec[0]" in err.hint


def test_directions_reshaped_not_transposed_is_named():
    def resample(sae, frac, resample_scale):
        dead = (frac <= 0).all(0)
        n = int(dead.sum())
        if n == 0:
            return
        d = torch.randn(sae.cfg.d_in, n, device=sae.W_enc.device)
        d = (d / d.norm(dim=0, keepdim=True)).reshape(n, sae.cfg.d_in)
        sae.W_dec.data[dead] = d
        sae.W_enc.data.transpose(-1, -2)[dead] = d * resample_scale
        sae.b_enc.data[dead] = 0.0

    err = assert_fails(checks.test_resample_simple, resample, "directions_reshaped")
    assert ".T" in err.message
