"""Proofs for part 5's diagnoses added after the fresh39 held-out measurement: resample_simple writing the encoder
column as -resample_scale · v (the sign flipped) is named as such, not as an unexplained direction mismatch;
W_dec_normalized dividing by √(mean(W²)·cfg.d_sae) (a wrong config field), and
generate_batch sparsifying the features twice or taking a running sum over the batch, are named."""

from __future__ import annotations

import torch

import solutions.part5_toy_saes as P
import tests.part5_toy_saes as checks
from tests.proving import assert_fails


def _negated_encoder(sae, frac, resample_scale):
    P.resample_simple(sae, frac, resample_scale)
    with torch.no_grad():
        dead = (frac <= 0).all(0)
        sae.W_enc.data.transpose(-1, -2)[dead] = -sae.W_dec.data[dead] * resample_scale


def test_negated_encoder_column_is_named():
    err = assert_fails(checks.test_resample_simple, _negated_encoder, "enc_negated")
    assert "sign" in err.hint


def _subclass(name, fn, prop=False):
    return type("S", (P.ToySAE,), {name: property(fn) if prop else fn})


def test_norm_with_the_wrong_config_field_is_named():
    def norm_d_sae(self):
        W = self.W_dec
        return W / (torch.sqrt(W.pow(2).mean(-1, keepdim=True) * self.cfg.d_sae) + self.cfg.weight_normalize_eps)

    err = assert_fails(
        checks.test_W_dec_normalized, _subclass("W_dec_normalized", norm_d_sae, True), "norm_wrong_field"
    )
    assert "cfg.d_sae" in err.hint and "cfg.d_in" in err.hint


def test_features_sparsified_twice_is_named():
    def masked_again(self, batch_size):
        x = self.model.generate_batch(batch_size)
        x = x * (torch.rand_like(x) < self.model.feature_probability)
        return torch.einsum("bif,idf->bid", x, self.model.W)

    err = assert_fails(checks.test_generate_batch, _subclass("generate_batch", masked_again), "features_dropped")
    assert "sparsified a second time" in err.hint


def test_running_sum_over_the_batch_is_named():
    def running_sum(self, batch_size):
        x = self.model.generate_batch(batch_size)
        return torch.einsum("bif,idf->bid", x, self.model.W).cumsum(0)

    err = assert_fails(checks.test_generate_batch, _subclass("generate_batch", running_sum), "running_sum")
    assert "`batch`" in err.message
