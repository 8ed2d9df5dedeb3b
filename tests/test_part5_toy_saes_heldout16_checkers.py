"""Proofs for part 5 after the fresh37 measurement: dead judged on only the last 10 steps of the window (the checker's
window is longer than any such slice, so the slice is read back and named)."""

from __future__ import annotations

import torch

import tests.part5_toy_saes as checks
from tests.proving import assert_fails


def _resample_last(k: int):
    def resample_simple(sae, frac_active_in_window, resample_scale):
        dead = (frac_active_in_window[-k:] == 0).all(0)
        n_dead = int(dead.sum())
        if n_dead == 0:
            return
        v = torch.randn(n_dead, sae.cfg.d_in, device=sae.W_enc.device)
        v = v / v.norm(dim=-1, keepdim=True)
        sae.W_dec.data[dead] = v
        sae.W_enc.data.transpose(-1, -2)[dead] = v * resample_scale
        sae.b_enc.data[dead] = 0.0

    return resample_simple


def test_last_ten_steps_named():
    failure = assert_fails(checks.test_resample_simple, _resample_last(10), "window_slice")
    assert "only the last m steps" in failure.message and "10" in failure.message


def test_last_four_steps_named():
    failure = assert_fails(checks.test_resample_simple, _resample_last(4), "window_slice")
    assert "only the last m steps" in failure.message and "4" in failure.message
