"""Proofs for part 5's read-offs (tests/part5_toy_saes_readoffs.py) after the fresh24 measurement: the loss's
reconstruction part summed over d_in (the factor named as d_in), new encoder lengths divided by the mean live norm or
built from the median, resampling weights L_rec⁴ (the power fitted from the picks), and W_dec rows divided by their
instance's largest row norm or by instance 0's row norms."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import solutions.part5_toy_saes as P
import tests.part5_toy_saes as checks
from tests.proving import assert_fails


def test_loss_summed_over_d_in():
    class Summed(P.ToySAE):
        def forward(self, h):
            loss_dict, _, acts, h_rec = P.ToySAE.forward(self, h)
            loss = ((h_rec - h).pow(2).sum(-1) + self.sparsity_coeff * loss_dict["L_sparsity"]).mean(0).sum()
            return loss_dict, loss, acts, h_rec

    failure = assert_fails(checks.test_forward, Summed, "loss_parts")
    assert "is d_in" in failure.message and "summed over d_in" in failure.message


def _resampler(kind):
    def resample(sae, frac, scale, batch_size):
        dead = (frac <= 0).all(dim=0)
        h = sae.generate_batch(batch_size)
        l2 = sae.forward(h)[0]["L_reconstruction"]
        for inst in range(sae.cfg.n_inst):
            idx = dead[inst].nonzero().squeeze(-1)
            w = l2[:, inst].pow(4 if kind == "pow4" else 2)
            if idx.numel() == 0 or w.sum() <= 0:
                continue
            d = F.normalize(h[torch.multinomial(w, idx.numel(), replacement=True), inst] - sae.b_dec[inst], dim=-1)
            alive = sae.W_enc[inst, :, ~dead[inst]].norm(dim=0)
            stat = alive.median() if kind == "median" else alive.mean()
            col = d.T * scale / stat if kind == "div" else d.T * scale * stat
            with torch.no_grad():
                sae.W_dec[inst, idx] = d
                sae.W_enc[inst][:, idx] = col
                sae.b_enc[inst, idx] = 0.0

    return resample


def test_resample_advanced_divided_by_live_norm():
    failure = assert_fails(checks.test_resample_advanced, _resampler("div"), "enc_stat")
    assert "divided by the mean" in failure.message


def test_resample_advanced_median_live_norm():
    failure = assert_fails(checks.test_resample_advanced, _resampler("median"), "enc_stat")
    assert "median" in failure.message


def test_resample_advanced_fourth_power():
    failure = assert_fails(checks.test_resample_advanced, _resampler("pow4"), "sampling_power")
    assert "L_reconstruction^4" in failure.hint


def _normalized(fn):
    class Normalized(P.ToySAE):
        @property
        def W_dec_normalized(self):
            return fn(self.W_dec, self.cfg.weight_normalize_eps)

    return Normalized


def test_W_dec_divided_by_instance_max_norm():
    impl = _normalized(lambda W, eps: W / (W.norm(dim=-1, keepdim=True).amax(1, keepdim=True) + eps))
    failure = assert_fails(checks.test_W_dec_normalized, impl, "values")
    assert "largest row norm of its instance" in failure.hint


def test_W_dec_instance0_norms():
    impl = _normalized(lambda W, eps: W / (W.norm(dim=-1, keepdim=True)[0] + eps))
    failure = assert_fails(checks.test_W_dec_normalized, impl, "values")
    assert "instance 0's row norms" in failure.hint
