"""Proofs after the fresh46 fix round: W_dec_normalized dividing by the encoder's column norms (divisor from another
tensor) named; resample_simple's draws divided by one norm of the whole stack (joint_norm); the tied SAE's encoder
write overwritten by a later decoder write (tied_enc_overwritten: the lengths are checked in the tied case too);
resample_advanced normalising before subtracting b_dec; and the round's correct variants."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

import solutions.part5_toy_saes as P
import tests.part5_toy_saes as checks
from tests.proving import assert_fails, assert_passes


def _init(kind):
    class S(P.ToySAE):
        def __init__(self, cfg, model=None):
            nn.Module.__init__(self)
            self.cfg = cfg
            device = model.W.device if model is not None else torch.device("cpu")
            self.model = model.requires_grad_(False) if model is not None else None
            shape = (cfg.n_inst, cfg.d_in, cfg.d_sae)
            if kind == "a_sqrt5":
                W = nn.init.kaiming_uniform_(torch.empty(*shape, device=device), a=math.sqrt(5))
            elif kind == "transposed_draw":
                W = torch.empty(cfg.n_inst, cfg.d_sae, cfg.d_in, device=device)
                W = nn.init.kaiming_uniform_(W).transpose(-1, -2).contiguous()
            else:  # per 2D slice: fan d_sae
                W = torch.empty(*shape, device=device)
                for k in range(cfg.n_inst):
                    nn.init.kaiming_uniform_(W[k])
            self.W_enc = nn.Parameter(W)
            self._W_dec = None if cfg.tied_weights else nn.Parameter(self.W_enc.detach().transpose(-1, -2).clone())
            self.b_enc = nn.Parameter(torch.zeros(cfg.n_inst, cfg.d_sae, device=device))
            self.b_dec = nn.Parameter(torch.zeros(cfg.n_inst, cfg.d_in, device=device))
            coeff = torch.as_tensor(cfg.sparsity_coeff, dtype=torch.float32, device=device)
            self.register_buffer("sparsity_coeff", coeff.broadcast_to((cfg.n_inst,)).clone())

    return S


def test_init_correct_variants_pass():
    for kind in ("a_sqrt5", "transposed_draw", "per_slice"):
        assert_passes(checks.test_init, _init(kind))


def _with_norm(fn):
    return type("NormV", (P.ToySAE,), {"W_dec_normalized": property(fn)})


def test_divided_by_encoder_column_norms_named():
    def f(self):
        return self.W_dec / (self.W_enc.norm(dim=-2).unsqueeze(-1) + self.cfg.weight_normalize_eps)

    err = assert_fails(checks.test_W_dec_normalized, _with_norm(f), "divisor_source")
    assert "W_enc transposed" in err.message and "self.W_dec.norm(dim=-1" in err.hint


def test_reciprocal_passes():
    def f(self):
        W = self.W_dec
        return W * (W.norm(dim=-1, keepdim=True) + self.cfg.weight_normalize_eps).reciprocal()

    assert_passes(checks.test_W_dec_normalized, _with_norm(f))


def _rs(mode):
    def f(sae, frac, resample_scale):
        dead = (frac <= 0).all(dim=0)
        n = int(dead.sum())
        if n == 0:
            return
        d = torch.randn(n, sae.cfg.d_in, device=sae.W_enc.device)
        d = d / d.norm() if mode == "whole_norm" else d / d.norm(dim=-1, keepdim=True)
        if mode == "enc_first":
            sae.W_enc.data.transpose(-1, -2)[dead] = d * resample_scale
            sae.W_dec.data[dead] = d
        else:
            sae.W_dec.data[dead] = d
            sae.W_enc.data.transpose(-1, -2)[dead] = d * resample_scale
        sae.b_enc.data[dead] = 0.0

    return f


def test_rs_matrix_norm_named():
    err = assert_fails(checks.test_resample_simple, _rs("whole_norm"), "joint_norm")
    assert "no dim" in err.message and "dim=-1" in err.hint


def test_rs_encoder_written_first_tied_named():
    err = assert_fails(checks.test_resample_simple, _rs("enc_first"), "tied_enc_overwritten")
    assert "length 1" in err.message and "last" in err.hint


def test_rs_tied_wrong_length_caught():
    def f(sae, frac, resample_scale):
        _rs("ok")(sae, frac, resample_scale)
        if sae._W_dec is None:
            dead = (frac <= 0).all(dim=0)
            sae.W_enc.data.transpose(-1, -2)[dead] *= 2.0

    assert_fails(checks.test_resample_simple, f, "tied_enc_length")


def test_rs_loop_bool_any_passes():
    def f(sae, frac, resample_scale):
        dead = ~frac.bool().any(0)
        with torch.no_grad():
            for i, j in dead.nonzero().tolist():
                v = F.normalize(torch.randn(sae.cfg.d_in, device=sae.W_enc.device), dim=0)
                sae.W_dec[i, j] = v
                sae.W_enc[i, :, j] = resample_scale * v
                sae.b_enc[i, j] = 0.0

    assert_passes(checks.test_resample_simple, f)


def _ra(mode):
    def f(sae, frac, resample_scale, batch_size):
        dead = (frac <= 0).all(dim=0)
        h = sae.generate_batch(batch_size)
        l2 = sae.forward(h)[0]["L_reconstruction"]
        for inst in range(sae.cfg.n_inst):
            idx = dead[inst].nonzero().squeeze(-1)
            n = idx.numel()
            w = l2[:, inst].pow(2)
            if n == 0 or w.sum() <= 0:
                continue
            if mode == "ok_cat":
                picked = torch.distributions.Categorical(probs=w / w.sum()).sample((n,))
            else:
                picked = torch.multinomial(w, n, replacement=True)
            v = h[picked, inst]
            if mode == "norm_then_sub":
                v = v / v.norm(dim=-1, keepdim=True).clamp_min(1e-12) - sae.b_dec[inst]
            elif mode == "joint":
                v = (v - sae.b_dec[inst]) / (v - sae.b_dec[inst]).norm()
            else:
                v = v - sae.b_dec[inst]
                v = v / v.norm(dim=-1, keepdim=True).clamp_min(1e-12)
            live = sae.W_enc[inst, :, ~dead[inst]].norm(dim=0)
            scale = live.mean() if live.numel() > 0 else 1.0
            sae.W_dec.data[inst, idx] = v.detach()
            sae.W_enc.data[inst][:, idx] = (v.T * resample_scale * scale).detach()
            sae.b_enc.data[inst, idx] = 0.0

    return f


def test_ra_normalise_then_subtract_b_dec_named():
    err = assert_fails(checks.test_resample_advanced, _ra("norm_then_sub"), "normalised_before_b_dec")
    assert "+ b_dec" in err.message and "subtract b_dec first" in err.hint


def test_ra_joint_norm_named():
    err = assert_fails(checks.test_resample_advanced, _ra("joint"), "joint_norm")
    assert "each instance's" in err.message


def test_ra_categorical_passes():
    assert_passes(checks.test_resample_advanced, _ra("ok_cat"))
