"""Proofs for part 5 from the second fix round after held-out round AX (fresh49).

* init that freezes only model.W (`model_not_frozen`): the message names b_final as the parameter still training and
  W as the one frozen.
* resample_simple with resample_advanced's encoder rule, scale · mean live encoder norm · v (`enc_live_norm_scaled`):
  read back from the instance's live encoder columns before the call.
* resample_simple dividing the Gaussian draw by its L1 norm (`dec_wrong_p_norm`): every row has L1 norm 1.
* the correct variants the round found still pass.
"""

from __future__ import annotations

import torch
from torch import nn

import solutions.part5_toy_saes as P
import tests.part5_toy_saes as checks
from tests.proving import assert_fails, assert_passes


def _init(variant):
    def __init__(self, cfg, model=None):
        nn.Module.__init__(self)
        self.cfg = cfg
        device = model.W.device if model is not None else torch.device("cpu")
        if variant == "freeze_W_only":
            if model is not None:
                model.W.requires_grad_(False)
            self.model = model
        else:
            self.model = model.requires_grad_(False) if model is not None else None
        W = nn.init.kaiming_uniform_(torch.empty(cfg.n_inst, cfg.d_sae, cfg.d_in, device=device)).transpose(-1, -2)
        self.W_enc = nn.Parameter(W)
        self._W_dec = None if cfg.tied_weights else nn.Parameter(self.W_enc.detach().transpose(-1, -2).clone())
        self.b_enc = nn.Parameter(torch.zeros(cfg.n_inst, cfg.d_sae, device=device))
        self.b_dec = nn.Parameter(torch.zeros(cfg.n_inst, cfg.d_in, device=device))
        coeff = torch.as_tensor(cfg.sparsity_coeff, dtype=torch.float32, device=device)
        self.register_buffer("sparsity_coeff", coeff.broadcast_to((cfg.n_inst,)).clone())

    return type("InitV", (P.ToySAE,), {"__init__": __init__})


def test_fresh49b_init_freezing_only_W_names_b_final():
    failure = assert_fails(checks.test_init, _init("freeze_W_only"), "model_not_frozen")
    assert "b_final" in failure.message and "W is frozen" in failure.message


def test_fresh49b_init_correct_variant_passes():
    assert_passes(checks.test_init, _init("ok"))


def _rs_live_norm(sae, frac, resample_scale):
    dead = (frac <= 0).all(dim=0)
    for i in range(sae.cfg.n_inst):
        idx = dead[i].nonzero().squeeze(-1)
        if idx.numel() == 0:
            continue
        v = torch.randn(idx.numel(), sae.cfg.d_in)
        v = v / v.norm(dim=-1, keepdim=True)
        alive = sae.W_enc.data[i][:, ~dead[i]].norm(dim=0)
        s = alive.mean() if alive.numel() else 1.0
        sae.W_dec.data[i, idx] = v
        sae.W_enc.data[i][:, idx] = v.T * resample_scale * s
        sae.b_enc.data[i, idx] = 0.0


def _rs_l1(sae, frac, resample_scale):
    dead = (frac <= 0).all(dim=0)
    n = int(dead.sum())
    if n == 0:
        return
    v = torch.randn(n, sae.cfg.d_in)
    v = v / v.abs().sum(-1, keepdim=True)
    sae.W_dec.data[dead] = v
    sae.W_enc.data.transpose(-1, -2)[dead] = v * resample_scale
    sae.b_enc.data[dead] = 0.0


def _rs_ok(sae, frac, resample_scale):
    dead = frac.amax(0) == 0
    for i, j in dead.nonzero().tolist():
        v = torch.randn(sae.cfg.d_in, device=sae.W_enc.device)
        v = v / torch.linalg.vector_norm(v)
        sae.W_dec.data[i, j] = v
        sae.W_enc.data[i, :, j] = resample_scale * v
        sae.b_enc.data[i, j] = 0


def test_fresh49b_resample_simple_live_norm_rule_is_read_back():
    failure = assert_fails(checks.test_resample_simple, _rs_live_norm, "enc_live_norm_scaled")
    assert "mean norm of the instance's live encoder columns" in failure.message


def test_fresh49b_resample_simple_l1_normalised_is_read_back():
    failure = assert_fails(checks.test_resample_simple, _rs_l1, "dec_wrong_p_norm")
    assert "L1 norm 1" in failure.message


def test_fresh49b_resample_simple_correct_variant_passes():
    assert_passes(checks.test_resample_simple, _rs_ok)


def _fwd_rec_detached():
    def forward(self, h):
        h_cent = h - self.b_dec
        pre = torch.einsum("bid,ids->bis", h_cent, self.W_enc) + self.b_enc
        acts = torch.relu(pre)
        h_rec = torch.einsum("bis,isd->bid", acts, self.W_dec_normalized) + self.b_dec
        L_rec = (h_rec - h).pow(2).mean(-1)
        L_sp = acts.abs().sum(-1)
        loss = (L_rec.detach() + self.sparsity_coeff * L_sp).mean(0).sum()
        return {"L_reconstruction": L_rec, "L_sparsity": L_sp}, loss, acts, h_rec

    return type("FwdV", (P.ToySAE,), {"forward": forward})


def test_fresh49b_forward_reconstruction_detached_names_the_term():
    failure = assert_fails(checks.test_forward, _fwd_rec_detached(), "reconstruction_detached")
    assert "reconstruction term carries no gradient" in failure.hint
