"""Proofs for part 5 from held-out round AX (fresh49).

* forward with F.threshold(pre, cfg.jumprelu_init_threshold, 0) (`acts_threshold`): the main inputs had no
  pre-activation in (0, 1e-3]; a small-scale probe (pre-activations of order 1e-4) shows the cut and names the field.
* resample_advanced skipping an instance when max L² < 1e-6 (`loss_tolerance`): an instance with tiny but nonzero
  losses must be resampled; only an all-zero-loss instance is skipped.
* the correct variants the round found still pass.
"""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F
from torch import nn

import solutions.part5_toy_saes as P
import tests.part5_toy_saes as checks
from tests.proving import assert_fails, assert_passes


def _with(**methods) -> type:
    return type("V", (P.ToySAE,), methods)


# ---------------- forward
def _fwd(variant):
    def forward(self, h):
        h_cent = h - self.b_dec
        pre = einops.einsum(h_cent, self.W_enc, "batch inst d_in, inst d_in d_sae -> batch inst d_sae") + self.b_enc
        if variant == "ok":
            acts = F.relu(pre)
            rec_c = torch.matmul(acts.unsqueeze(-2), self.W_dec_normalized.unsqueeze(0)).squeeze(-2)
            L_rec = F.mse_loss(rec_c, h_cent, reduction="none").mean(-1)
            L_sp = torch.linalg.vector_norm(acts, ord=1, dim=-1)
            total = L_rec + self.sparsity_coeff * L_sp
            loss = torch.einsum("bi,i->", total, torch.ones_like(self.sparsity_coeff)) / h.shape[0]
            return {"L_reconstruction": L_rec, "L_sparsity": L_sp}, loss, acts, rec_c + self.b_dec
        acts = F.threshold(pre, self.cfg.jumprelu_init_threshold, 0.0)
        h_rec = einops.einsum(acts, self.W_dec_normalized, "batch inst d_sae, inst d_sae d_in -> batch inst d_in")
        h_rec = h_rec + self.b_dec
        L_rec = (h_rec - h).pow(2).mean(-1)
        L_sp = acts.abs().sum(-1)
        loss = (L_rec + self.sparsity_coeff * L_sp).mean(0).sum()
        return {"L_reconstruction": L_rec, "L_sparsity": L_sp}, loss, acts, h_rec

    return _with(forward=forward)


def test_fresh49_forward_threshold_at_config_value_fails():
    failure = assert_fails(checks.test_forward, _fwd("thr"), "acts_threshold")
    assert "cfg.jumprelu_init_threshold" in failure.message and "small inputs" in failure.message


def test_fresh49_forward_correct_variant_passes():
    assert_passes(checks.test_forward, _fwd("ok"))


# ---------------- resample_advanced
def _ra(variant):
    def resample(sae, frac, resample_scale, batch_size):
        dead = (frac <= 0).all(dim=0)
        h = sae.generate_batch(batch_size)
        l2 = sae.forward(h)[0]["L_reconstruction"]
        for inst in range(sae.cfg.n_inst):
            if variant == "ok_fwd_in_loop":
                l2 = sae.forward(h)[0]["L_reconstruction"]
            idx = dead[inst].nonzero().squeeze(-1)
            w = l2[:, inst].pow(2)
            if idx.numel() == 0 or (w.max() < 1e-6 if variant == "tol" else w.sum() <= 0):
                continue
            p = torch.multinomial(w, idx.numel(), replacement=True)
            d = F.normalize(h[p, inst] - sae.b_dec[inst], dim=-1)
            alive = sae.W_enc[inst, :, ~dead[inst]].norm(dim=0)
            s = alive.mean() if alive.numel() else 1.0
            sae.W_dec.data[inst, idx] = d
            sae.W_enc.data[inst][:, idx] = d.T * resample_scale * s
            sae.b_enc.data[inst, idx] = 0.0

    return resample


def test_fresh49_resample_advanced_loss_tolerance_fails():
    failure = assert_fails(checks.test_resample_advanced, _ra("tol"), "loss_tolerance")
    assert "tiny but nonzero" in failure.message


def test_fresh49_resample_advanced_correct_variant_passes():
    assert_passes(checks.test_resample_advanced, _ra("ok_fwd_in_loop"))


# ---------------- init, W_dec_normalized, generate_batch, resample_simple: correct variants
def _init_dsae_first(self, cfg, model=None):
    nn.Module.__init__(self)
    self.cfg = cfg
    device = model.W.device if model is not None else torch.device("cpu")
    self.model = model.requires_grad_(False) if model is not None else None
    W = nn.init.kaiming_uniform_(torch.empty(cfg.n_inst, cfg.d_sae, cfg.d_in, device=device)).transpose(-1, -2)
    self.W_enc = nn.Parameter(W)
    self._W_dec = None if cfg.tied_weights else nn.Parameter(self.W_enc.detach().transpose(-1, -2).clone())
    self.b_enc = nn.Parameter(torch.zeros(cfg.n_inst, cfg.d_sae, device=device))
    self.b_dec = nn.Parameter(torch.zeros(cfg.n_inst, cfg.d_in, device=device))
    coeff = torch.as_tensor(cfg.sparsity_coeff, dtype=torch.float32, device=device)
    self.register_buffer("sparsity_coeff", coeff.broadcast_to((cfg.n_inst,)).clone())


def _norm_ok(self):
    W = self.W_dec
    n = torch.linalg.vector_norm(W.mT, dim=-2).unsqueeze(-1)
    return torch.div(W, n.add(self.cfg.weight_normalize_eps))


def _gen_ok(self, batch_size):
    f = self.model.generate_batch(batch_size)
    return (self.model.W.unsqueeze(0) @ f.unsqueeze(-1)).squeeze(-1)


def _rs_ok(sae, frac, resample_scale):
    dead = frac.amax(0) == 0
    for i, j in dead.nonzero().tolist():
        v = torch.randn(sae.cfg.d_in, device=sae.W_enc.device)
        v = v / torch.linalg.vector_norm(v)
        sae.W_dec.data[i, j] = v
        sae.W_enc.data[i, :, j] = resample_scale * v
        sae.b_enc.data[i, j] = 0


def test_fresh49_other_correct_variants_pass():
    assert_passes(checks.test_init, _with(__init__=_init_dsae_first))
    assert_passes(checks.test_W_dec_normalized, _with(W_dec_normalized=property(_norm_ok)))
    assert_passes(checks.test_generate_batch, _with(generate_batch=_gen_ok))
    assert_passes(checks.test_resample_simple, _rs_ok)


# ---------------- W_dec_normalized: eps after the division, short rows left raw
def _norm_eps_on_reciprocal(self):
    W = self.W_dec
    return W * (1 / W.norm(dim=-1, keepdim=True) + self.cfg.weight_normalize_eps)


def _norm_short_raw(self):
    W = self.W_dec
    n = W.norm(dim=-1, keepdim=True)
    return torch.where(n > self.cfg.weight_normalize_eps, W / n, W)


def test_fresh49_eps_added_to_reciprocal_is_read_back():
    failure = assert_fails(
        checks.test_W_dec_normalized, _with(W_dec_normalized=property(_norm_eps_on_reciprocal)), "eps_after_division"
    )
    assert "eps added to the reciprocal" in failure.message and "low precision" not in failure.hint


def test_fresh49_short_rows_left_raw_is_read_back():
    failure = assert_fails(
        checks.test_W_dec_normalized, _with(W_dec_normalized=property(_norm_short_raw)), "short_rows_raw"
    )
    assert "came back unchanged" in failure.message and "no eps" in failure.message


# ---------------- init: kaiming_uniform_(a=1)
def _init_a1(self, cfg, model=None):
    _init_dsae_first(self, cfg, model)
    with torch.no_grad():
        self.W_enc = nn.Parameter(nn.init.kaiming_uniform_(torch.empty(cfg.n_inst, cfg.d_in, cfg.d_sae), a=1))
        if not cfg.tied_weights:
            self._W_dec = nn.Parameter(self.W_enc.detach().transpose(-1, -2).clone())


def test_fresh49_kaiming_a_equals_1_names_a():
    failure = assert_fails(checks.test_init, _with(__init__=_init_a1), "init_scale")
    assert "a=1" in failure.message and "nonlinearity='linear'" in failure.message
