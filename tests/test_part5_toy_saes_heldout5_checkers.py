"""Proofs for part 5's diagnoses added after the fresh14 held-out measurement: an error whose failing line holds a
local tensor that is another local reduced over one axis (torch.max(pre, 0) as a ReLU), and the resampled encoder
written through a reshape of W_enc instead of a transpose."""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import solutions.part5_toy_saes as P
import tests.part5_toy_saes as checks
from tests.proving import assert_fails


def _forward(activation):
    def forward(self, h):
        pre = einops.einsum(h - self.b_dec, self.W_enc, "b i d, i d s -> b i s") + self.b_enc
        acts = activation(pre)
        h_rec = einops.einsum(acts, self.W_dec_normalized, "b i s, i s d -> b i d") + self.b_dec
        rec = (h_rec - h).pow(2).mean(-1)
        sp = acts.abs().sum(-1)
        loss = (rec + self.sparsity_coeff * sp).mean(0).sum()
        return {"L_reconstruction": rec, "L_sparsity": sp}, loss, acts, h_rec

    return type("Fresh14ToySAE", (P.ToySAE,), {"forward": forward})


def test_forward_relu_as_max_over_batch():
    err = assert_fails(checks.test_forward, _forward(lambda pre: torch.max(pre, 0).values), "reduced_axis")
    assert "the batch" in err.message and "elementwise" in err.hint


def test_forward_pre_averaged_over_instances():
    err = assert_fails(checks.test_forward, _forward(lambda pre: pre.mean(1)), "reduced_axis")
    assert "mean over dim 1, the instances" in err.message


def test_forward_other_error_stays_generic():
    assert_fails(checks.test_forward, _forward(lambda pre: pre[..., :-1]), "exception")


def test_resample_simple_encoder_through_reshape():
    def resample_simple(sae, frac, resample_scale):
        dead = (frac <= 0).all(dim=0)
        n_inst, d_in, d_sae = sae.W_enc.shape
        dirs = F.normalize(torch.randn(int(dead.sum()), d_in), dim=-1)
        sae.W_dec.data[dead] = dirs
        sae.W_enc.data.reshape(n_inst, d_sae, d_in)[dead] = dirs * resample_scale
        sae.b_enc.data[dead] = 0.0

    err = assert_fails(checks.test_resample_simple, resample_simple, "reshape_not_transpose")
    assert "transpose" in err.hint
