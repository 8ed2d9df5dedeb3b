"""Proofs after the fresh45 fix round: W_enc drawn with Xavier/Glorot (fan_in + fan_out) named, the resampled
encoder written from the draw before it was normalised (order of operations), the draw normalised over another
axis (latents, instances, the whole draw), and b_enc zeroed through an indexing copy (a lost write), in
resample_simple and resample_advanced; and the round's correct variants."""

from __future__ import annotations

import einops
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
            self.model = model.requires_grad_(False) if model is not None else None
            device = model.W.device if model is not None else torch.device("cpu")
            W = torch.empty(cfg.n_inst, cfg.d_in, cfg.d_sae, device=device)
            if kind == "xavier":
                nn.init.xavier_uniform_(W)
            elif kind == "xavier_relu":
                nn.init.xavier_uniform_(W, gain=nn.init.calculate_gain("relu"))
            else:
                nn.init.kaiming_uniform_(W)
            self.W_enc = nn.Parameter(W)
            if cfg.tied_weights:
                self._W_dec = None
            elif kind == "mT_clone_detach":
                self._W_dec = nn.Parameter(self.W_enc.mT.clone().detach())
            else:
                self._W_dec = nn.Parameter(self.W_enc.detach().transpose(-1, -2).clone())
            self.b_enc = nn.Parameter(torch.zeros(cfg.n_inst, cfg.d_sae, device=device))
            self.b_dec = nn.Parameter(torch.zeros(cfg.n_inst, cfg.d_in, device=device))
            coeff = torch.as_tensor(cfg.sparsity_coeff, dtype=torch.float32, device=device)
            self.register_buffer("sparsity_coeff", coeff.broadcast_to((cfg.n_inst,)).clone())

    return S


def test_xavier_named():
    err = assert_fails(checks.test_init, _init("xavier"), "init_scale")
    assert "xavier_uniform_" in err.message and "gain 1" in err.message and "not xavier_uniform_" in err.hint


def test_xavier_relu_gain_named():
    err = assert_fails(checks.test_init, _init("xavier_relu"), "init_scale")
    assert "xavier_uniform_" in err.message and "gain √2" in err.message


def test_mT_clone_detach_passes():
    assert_passes(checks.test_init, _init("mT_clone_detach"))


def _rs_order(sae, frac, resample_scale):
    dead = (frac <= 0).all(dim=0)
    n = int(dead.sum())
    if n == 0:
        return
    d = torch.randn(n, sae.cfg.d_in, device=sae.W_enc.device)
    sae.W_enc.data.transpose(-1, -2)[dead] = d * resample_scale
    d /= d.norm(dim=-1, keepdim=True)
    sae.W_dec.data[dead] = d
    sae.b_enc.data[dead] = 0.0


def _rs_order_3d(sae, frac, resample_scale):
    """The same order of operations on a whole [inst d_sae d_in] draw, normalised out of place afterwards."""
    dead = (frac <= 0).all(dim=0)
    d = torch.randn(sae.cfg.n_inst, sae.cfg.d_sae, sae.cfg.d_in, device=sae.W_enc.device)
    sae.W_enc.data.transpose(-1, -2)[dead] = d[dead] * resample_scale
    sae.W_dec.data[dead] = F.normalize(d, dim=-1)[dead]
    sae.b_enc.data[dead] = 0.0


def test_encoder_before_normalising_named():
    for impl in (_rs_order, _rs_order_3d):
        err = assert_fails(checks.test_resample_simple, impl, "enc_before_normalising")
        assert "before it was normalised" in err.message and "order of operations" in err.hint


def _rs_axis(dim):
    def resample(sae, frac, resample_scale):
        dead = (frac <= 0).all(dim=0)
        d = torch.randn(sae.cfg.n_inst, sae.cfg.d_sae, sae.cfg.d_in, device=sae.W_enc.device)
        d = d / (d.norm() if dim is None else d.norm(dim=dim, keepdim=True))
        sae.W_dec.data[dead] = d[dead]
        sae.W_enc.data.transpose(-1, -2)[dead] = d[dead] * resample_scale
        sae.b_enc.data[dead] = 0.0

    return resample


def test_normalised_over_other_axis_named():
    for dim, axis in ((1, "latents axis"), (0, "instances axis"), (None, "whole draw")):
        err = assert_fails(checks.test_resample_simple, _rs_axis(dim), "normalized_wrong_axis")
        assert axis in err.message and "dim=-1" in err.hint, (dim, err.message)


def _rs_bias(kind):
    def resample(sae, frac, resample_scale):
        dead = (frac <= 0).all(dim=0)
        for i in range(sae.cfg.n_inst):
            idx = dead[i].nonzero().squeeze(-1)
            if idx.numel() == 0:
                continue
            d = F.normalize(torch.randn(idx.numel(), sae.cfg.d_in, device=sae.W_enc.device), dim=-1)
            sae.W_dec.data[i, idx] = d
            sae.W_enc.data[i, :, idx] = d.T * resample_scale
            if kind == "zero_copy":
                sae.b_enc.data[i][idx].zero_()
            else:
                sae.b_enc.data[i, idx].fill_(0.0)

    return resample


def test_bias_zeroed_on_copy_named():
    for kind in ("zero_copy", "index_fill_copy"):
        err = assert_fails(checks.test_resample_simple, _rs_bias(kind), "b_enc_not_reset")
        assert "kept its old values" in err.message and "copy" in err.hint and "b_enc[i, idx] = 0" in err.hint


def _rs_ok(sae, frac, resample_scale):
    dead = frac.amax(0) == 0
    d = torch.randn_like(sae.W_dec)
    d = d / d.norm(dim=-1, keepdim=True)
    ii, jj = dead.nonzero(as_tuple=True)
    with torch.no_grad():
        sae.W_dec[ii, jj] = d[ii, jj]
        sae.W_enc[ii, :, jj] = d[ii, jj] * resample_scale
        sae.b_enc[ii, jj] = 0.0


def test_randn_like_nonzero_passes():
    assert_passes(checks.test_resample_simple, _rs_ok)


def resample_advanced_with(kind="ok", direction=None, live_scale=None):
    """The solution's resample_advanced with one slip: the bias zeroed on a copy ("b_enc_copy"), the decoder written
    through sae._W_dec, None when tied ("private"), or the encoder column written before the decoder row ("enc_first":
    tied, the unit decoder write lands over it); "ok" is correct. `direction(x, b_dec)` (the vector normalised into the
    new decoder row, default x - b_dec) and `live_scale(sae, inst, dead, frac)` (default: the live encoder columns'
    mean norm) replace those steps. Rounds BA and BB's proofs use it too."""

    def resample(sae, frac, resample_scale, batch_size):
        dead = (frac <= 0).all(dim=0)
        h = sae.generate_batch(batch_size)
        l2 = sae.forward(h)[0]["L_reconstruction"]
        for inst in range(sae.cfg.n_inst):
            idx = dead[inst].nonzero().squeeze(-1)
            w = l2[:, inst].pow(2)
            if idx.numel() == 0 or w.sum() <= 0:
                continue
            x = h[torch.multinomial(w, idx.numel(), replacement=True), inst]
            v = direction(x, sae.b_dec[inst]) if direction else x - sae.b_dec[inst]
            v = v / v.norm(dim=-1, keepdim=True).clamp_min(1e-12)
            live = sae.W_enc[inst, :, ~dead[inst]].norm(dim=0)
            scale = live_scale(sae, inst, dead, frac) if live_scale else torch.nan_to_num(live.mean(), nan=1.0)
            enc = (v.T * resample_scale * scale).detach()
            if kind == "enc_first":
                sae.W_enc.data[inst][:, idx] = enc
            (sae._W_dec if kind == "private" else sae.W_dec).data[inst, idx] = v.detach()
            if kind != "enc_first":
                sae.W_enc.data[inst][:, idx] = enc
            if kind == "b_enc_copy":
                sae.b_enc.data[inst][idx].zero_()
            else:
                sae.b_enc.data[inst, idx] = 0.0

    return resample


def test_advanced_bias_zeroed_on_copy_named():
    err = assert_fails(checks.test_resample_advanced, resample_advanced_with("b_enc_copy"), "b_enc_not_reset")
    assert "kept its old values" in err.message and "copy" in err.hint


def test_advanced_nan_to_num_fallback_passes():
    assert_passes(checks.test_resample_advanced, resample_advanced_with("ok"))


def _ra_vectorised(sae, frac, resample_scale, batch_size):
    dead = (frac <= 0).all(dim=0)
    h = sae.generate_batch(batch_size)
    with torch.no_grad():
        l2 = sae(h)[0]["L_reconstruction"]
        w = l2.T.pow(2)  # [inst batch]
        ok = w.sum(-1) > 0
        w = torch.where(ok[:, None], w, torch.ones_like(w))
        dead = dead & ok[:, None]
        picked = torch.multinomial(w, sae.cfg.d_sae, replacement=True)  # [inst d_sae]
        v = h[picked, torch.arange(sae.cfg.n_inst, device=h.device)[:, None]] - sae.b_dec[:, None]
        v = F.normalize(v, dim=-1, eps=1e-12)
        norms = sae.W_enc.norm(dim=1)  # [inst d_sae]
        live = (~((frac <= 0).all(0))).float()
        cnt = live.sum(-1)
        mean = torch.where(cnt > 0, (norms * live).sum(-1) / cnt.clamp_min(1), torch.ones_like(cnt))
        sae.W_dec[dead] = v[dead]
        sae.W_enc.transpose(-1, -2)[dead] = (v * (resample_scale * mean)[:, None, None])[dead]
        sae.b_enc[dead] = 0.0


def test_advanced_vectorised_passes():
    assert_passes(checks.test_resample_advanced, _ra_vectorised)


class _NormLinalg(P.ToySAE):
    @property
    def W_dec_normalized(self):
        W = self.W_dec
        return W / (torch.linalg.vector_norm(W, ord=2, dim=-1, keepdim=True) + self.cfg.weight_normalize_eps)


class _GenMatmul(P.ToySAE):
    def generate_batch(self, batch_size):
        x = self.model.generate_batch(batch_size)
        return (x.unsqueeze(-2) @ self.model.W.mT.unsqueeze(0)).squeeze(-2)


class _FwdCentred(P.ToySAE):
    def forward(self, h):
        h_cent = h - self.b_dec
        acts = F.relu(einops.einsum(h_cent, self.W_enc, "b i d, i d s -> b i s") + self.b_enc)
        dec = einops.einsum(acts, self.W_dec_normalized, "b i s, i s d -> b i d")
        L_rec = (dec - h_cent).pow(2).mean(-1)
        L_sp = acts.sum(-1)
        loss = (L_rec + self.sparsity_coeff * L_sp).mean() * h.shape[1]
        return {"L_reconstruction": L_rec, "L_sparsity": L_sp}, loss, acts, dec + self.b_dec


def test_round_correct_variants_pass():
    assert_passes(checks.test_W_dec_normalized, _NormLinalg)
    assert_passes(checks.test_generate_batch, _GenMatmul)
    assert_passes(checks.test_forward, _FwdCentred)
