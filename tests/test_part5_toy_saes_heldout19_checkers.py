"""Proofs for part 5's diagnoses added after the fresh39 held-out measurement: resample_simple writing the encoder
column as -resample_scale · v (the sign flipped) is named as such, not as an unexplained direction mismatch."""

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
