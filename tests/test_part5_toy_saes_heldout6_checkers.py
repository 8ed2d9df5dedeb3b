"""Proofs for part 5's diagnoses added after the fresh16 held-out measurement: a correct Kaiming init times an extra
1/√d_in (named by the factor), the dead mask inverted as "fired at every step" (only live latents resampled), and
forward's L_reconstruction left [batch inst d_in] (d_in now differs from n_inst, so the error's sizes say which)."""

from __future__ import annotations

import math

import einops
import torch
import torch.nn.functional as F

import solutions.part5_toy_saes as P
import tests.part5_toy_saes as checks
from tests.proving import assert_fails


def test_init_kaiming_divided_by_root_d_in():
    class SAE(P.ToySAE):
        def __init__(self, cfg, model=None):
            super().__init__(cfg, model)
            with torch.no_grad():
                self.W_enc.div_(math.sqrt(cfg.d_in))
                if self._W_dec is not None:
                    self._W_dec.copy_(self.W_enc.detach().transpose(-1, -2))

    failure = assert_fails(checks.test_init, SAE, "init_scale")
    assert "divided by √d_in" in failure.message and "ratio to the nearest" not in failure.message


def test_resample_simple_fired_at_every_step():
    def resample_simple(sae, frac, resample_scale):
        dead = (frac > 0).all(dim=0)
        n = int(dead.sum())
        if n == 0:
            return
        d = F.normalize(torch.randn(n, sae.cfg.d_in, device=sae.W_enc.device), dim=-1)
        sae.W_dec.data[dead] = d
        sae.W_enc.data.transpose(-1, -2)[dead] = d * resample_scale
        sae.b_enc.data[dead] = 0.0

    failure = assert_fails(checks.test_resample_simple, resample_simple, "only_live_resampled")
    assert "fired at every step" in failure.hint


def test_forward_mse_without_mean():
    def forward(self, h):
        pre = einops.einsum(h - self.b_dec, self.W_enc, "b i d, i d s -> b i s") + self.b_enc
        acts = F.relu(pre)
        h_rec = einops.einsum(acts, self.W_dec_normalized, "b i s, i s d -> b i d") + self.b_dec
        rec = F.mse_loss(h_rec, h, reduction="none")  # [batch inst d_in]: the .mean(-1) left out
        sp = acts.abs().sum(-1)
        loss = (rec + self.sparsity_coeff * sp).mean(0).sum()
        return {"L_reconstruction": rec, "L_sparsity": sp}, loss, acts, h_rec

    failure = assert_fails(checks.test_forward, type("F16", (P.ToySAE,), {"forward": forward}), "exception")
    assert "a reduction left out" in failure.hint and "4 is cfg.d_in" in failure.hint
