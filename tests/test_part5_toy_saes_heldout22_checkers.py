"""Proofs after the fresh41 fix round: a wrong config field holding a list named by its expression (learner_errors),
an out-of-range index that fits another axis said to look swapped, and resample_advanced's norm floor read back on
the second call's short inputs (‖h - b_dec‖ < 1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import solutions.part5_toy_saes as P
import tests.part5_toy_saes as checks
from tests.proving import assert_fails


def _subclass(name, fn, prop=False):
    return type("S", (P.ToySAE,), {name: property(fn) if prop else fn})


def test_list_config_field_named():
    def wrong(self):
        return self.W_dec / (self.W_dec.norm(dim=-1, keepdim=True) + self.cfg.sparsity_coeff)

    err = assert_fails(checks.test_W_dec_normalized, _subclass("W_dec_normalized", wrong, True), "exception")
    assert "`self.cfg.sparsity_coeff` is a list here" in err.hint and "config field" in err.hint


def _advanced(mod):
    def resample(sae, frac, resample_scale, batch_size):
        dead = (frac <= 0).all(0)
        h = sae.generate_batch(batch_size)
        l2 = sae.forward(h)[0]["L_reconstruction"]
        with torch.no_grad():
            for i in range(sae.cfg.n_inst):
                idx = dead[i].nonzero().squeeze(-1)
                w = l2[:, i].pow(2)
                if idx.numel() == 0 or w.sum() <= 0:
                    continue
                picked = torch.multinomial(w, idx.numel(), replacement=True)
                x = h[i, picked] if mod == "swap" else h[picked, i]
                d = x - sae.b_dec[i]
                d = d / d.norm(dim=-1, keepdim=True).clamp_min(0.8) if mod == "floor" else F.normalize(d, dim=-1)
                live = ~dead[i]
                scale = sae.W_enc[i][:, live].norm(dim=0).mean() if live.any() else 1.0
                sae.W_dec[i, idx] = d
                sae.W_enc[i][:, idx] = d.T * resample_scale * scale
                sae.b_enc[i, idx] = 0.0

    return resample


def test_swapped_indices_said():
    err = assert_fails(checks.test_resample_advanced, _advanced("swap"), "exception")
    assert "look swapped" in err.hint and "h[picked, i]?" in err.hint


def test_norm_floor_read_back():
    err = assert_fails(checks.test_resample_advanced, _advanced("floor"), "dec_norm_floor")
    assert "max(‖h - b_dec‖, 0.8)" in err.message


def test_normalised_passes():
    checks.test_resample_advanced(_advanced("ok"), device=torch.device("cpu"))
