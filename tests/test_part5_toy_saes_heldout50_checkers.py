"""Proofs for part 5 from held-out round AW (fresh48).

* resample_simple with a torch.Generator seeded with a constant on every call (`fixed_seed`): each call's
  directions are uniform, but two calls write the same ones; the ruling counts repeated draws as a mistake.
* resample_advanced taking, inside the per-instance loop, the dead indices of every instance
  (`torch.where(dead)[1]`, `pooled_instances`): it was read as a threshold rule on the window.
* the correct variants the round found still pass.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

import solutions.part5_toy_saes as P
import tests.part5_toy_saes as checks
from tests.proving import assert_fails, assert_passes


def _with(**methods) -> type:
    return type("V", (P.ToySAE,), methods)


# ---------------- resample_simple
def _rs_fixed_gen(sae, frac, resample_scale):
    dead = (frac <= 0).all(0)
    n = int(dead.sum())
    if n == 0:
        return
    g = torch.Generator(device=sae.W_enc.device).manual_seed(0)  # "reproducible" resampling
    v = torch.randn(n, sae.cfg.d_in, generator=g, device=sae.W_enc.device)
    v = v / v.norm(dim=-1, keepdim=True)
    sae.W_dec.data[dead] = v
    sae.W_enc.data.transpose(-1, -2)[dead] = v * resample_scale
    sae.b_enc.data[dead] = 0.0


def test_fresh48_fixed_seed_generator_each_call_fails():
    failure = assert_fails(checks.test_resample_simple, _rs_fixed_gen, "fixed_seed")
    assert "same new directions" in failure.message and "seeded with a constant" in failure.message


def _rs_ok_loop(sae, frac, resample_scale):
    dead = frac.sum(0) == 0
    for i in range(sae.cfg.n_inst):
        for j in range(sae.cfg.d_sae):
            if dead[i, j]:
                v = F.normalize(torch.randn(sae.cfg.d_in, device=sae.W_enc.device), dim=0)
                sae.W_dec.data[i, j, :] = v
                sae.W_enc.data[i, :, j] = resample_scale * v
                sae.b_enc.data[i, j] = 0.0


def _rs_generator_made_once():
    g = torch.Generator().manual_seed(0)  # made once, never reseeded: the draws go on from call to call

    def resample(sae, frac, resample_scale):
        dead = (frac <= 0).all(0)
        v = torch.randn(int(dead.sum()), sae.cfg.d_in, generator=g).to(sae.W_enc.device)
        v = v / v.norm(dim=-1, keepdim=True)
        sae.W_dec.data[dead] = v
        sae.W_enc.data.transpose(-1, -2)[dead] = v * resample_scale
        sae.b_enc.data[dead] = 0.0

    return resample


def test_fresh48_resample_simple_correct_variants_pass():
    assert_passes(checks.test_resample_simple, _rs_ok_loop)
    assert_passes(checks.test_resample_simple, _rs_generator_made_once())


# ---------------- resample_advanced
def _ra(variant):
    def resample(sae, frac, resample_scale, batch_size):
        dead = (frac <= 0).all(dim=0)
        h = sae.generate_batch(batch_size)
        l2 = sae.forward(h)[0]["L_reconstruction"]
        for inst in range(sae.cfg.n_inst):
            idx = dead[inst].nonzero().squeeze(-1)
            n = idx.numel()
            w = l2[:, inst].pow(2)
            if variant == "ok":
                w = w / w.sum() if w.sum() > 0 else w
            if n == 0 or w.sum() <= 0:
                continue
            if variant == "where_all":
                idx = torch.where(dead)[1]  # latent indices of the dead latents of ALL instances
                n = idx.numel()
            picked = torch.multinomial(w, n, replacement=True)
            d = h[picked, inst] - sae.b_dec[inst]
            d = d / d.norm(dim=-1, keepdim=True).clamp_min(1e-12)
            if variant == "ok":
                live = torch.linalg.vector_norm(sae.W_enc[inst].T[~dead[inst]], dim=-1)
            else:
                live = sae.W_enc[inst][:, ~dead[inst]].norm(dim=0)
            sc = live.mean() if live.numel() > 0 else 1.0
            sae.W_dec.data[inst, idx] = d
            if variant == "ok":
                sae.W_enc.data[inst, :, idx] = (d * resample_scale * sc).T
            else:
                sae.W_enc.data[inst][:, idx] = d.T * resample_scale * sc
            sae.b_enc.data[inst, idx] = 0.0

    return resample


def test_fresh48_dead_indices_of_all_instances_named_not_threshold():
    failure = assert_fails(checks.test_resample_advanced, _ra("where_all"), "pooled_instances")
    assert "dead in ANY instance" in failure.message and "dead[inst]" in failure.hint


def test_fresh48_resample_advanced_correct_variant_passes():
    assert_passes(checks.test_resample_advanced, _ra("ok"))


# ---------------- init, W_dec_normalized, generate_batch: correct variants
def _init_manual_bound(self, cfg, model=None):
    nn.Module.__init__(self)
    self.cfg = cfg
    device = model.W.device if model is not None else torch.device("cpu")
    self.model = model.requires_grad_(False) if model is not None else None
    bound = math.sqrt(6.0 / (cfg.d_in * cfg.d_sae))
    self.W_enc = nn.Parameter(torch.empty(cfg.n_inst, cfg.d_in, cfg.d_sae, device=device).uniform_(-bound, bound))
    self._W_dec = None if cfg.tied_weights else nn.Parameter(self.W_enc.detach().transpose(-1, -2).clone())
    self.b_enc = nn.Parameter(torch.zeros(cfg.n_inst, cfg.d_sae, device=device))
    self.b_dec = nn.Parameter(torch.zeros(cfg.n_inst, cfg.d_in, device=device))
    coeff = torch.as_tensor(cfg.sparsity_coeff, dtype=torch.float32, device=device)
    self.register_buffer("sparsity_coeff", coeff.broadcast_to((cfg.n_inst,)).clone())


def _norm_transposed(self):
    W = self.W_dec
    return (W.mT / (W.norm(dim=-1) + self.cfg.weight_normalize_eps).unsqueeze(-2)).mT


def _gen_bmm(self, batch_size):
    f = self.model.generate_batch(batch_size)
    return torch.bmm(self.model.W, f.permute(1, 2, 0)).permute(2, 0, 1)


def test_fresh48_correct_variants_pass():
    assert_passes(checks.test_init, _with(__init__=_init_manual_bound))
    assert_passes(checks.test_W_dec_normalized, _with(W_dec_normalized=property(_norm_transposed)))
    assert_passes(checks.test_generate_batch, _with(generate_batch=_gen_bmm))


# ---------------- generate_batch: noise on h, and reshape where a permute was meant
def _gen_noise(self, batch_size):
    f = self.model.generate_batch(batch_size)
    h = torch.einsum("bif,idf->bid", f, self.model.W)
    return h + 0.01 * torch.randn_like(h)  # "a little noise so the SAE doesn't overfit"


def _gen_view_input(self, batch_size):
    f = self.model.generate_batch(batch_size)  # [batch inst feats]
    n_inst, _, n_f = self.model.W.shape
    return torch.bmm(self.model.W, f.reshape(n_inst, n_f, batch_size)).permute(2, 0, 1)


def _gen_view_output(self, batch_size):
    f = self.model.generate_batch(batch_size)
    out = torch.bmm(self.model.W, f.permute(1, 2, 0))  # [inst d_in batch]
    return out.reshape(batch_size, *out.shape[:2])  # reshape where permute(2, 0, 1) was meant


def test_fresh48_noise_added_to_h_named():
    failure = assert_fails(checks.test_generate_batch, _with(generate_batch=_gen_noise), "noise_added")
    assert "no feature is present" in failure.message and "randn_like" in failure.hint


def test_fresh48_features_reshaped_not_permuted_named():
    failure = assert_fails(checks.test_generate_batch, _with(generate_batch=_gen_view_input), "reshaped_not_permuted")
    assert "reshaped to [inst feats batch]" in failure.message and ".permute" in failure.hint


def test_output_reshaped_not_permuted_named():
    failure = assert_fails(checks.test_generate_batch, _with(generate_batch=_gen_view_output), "reshaped_not_permuted")
    assert "[inst d_in batch]" in failure.message


# ---------------- resample_advanced: scale averaged over every column after zeroing the dead ones
def _ra_live_after(sae, frac, resample_scale, batch_size):
    dead = (frac <= 0).all(dim=0)
    h = sae.generate_batch(batch_size)
    l2 = sae.forward(h)[0]["L_reconstruction"]
    for inst in range(sae.cfg.n_inst):
        idx = dead[inst].nonzero().squeeze(-1)
        w = l2[:, inst].pow(2)
        if idx.numel() == 0 or w.sum() <= 0:
            continue
        picked = torch.multinomial(w, idx.numel(), replacement=True)
        d = h[picked, inst] - sae.b_dec[inst]
        d = d / d.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        sae.W_enc.data[inst][:, idx] = 0.0
        sc = sae.W_enc[inst].norm(dim=0).mean()  # zeros included
        sae.W_dec.data[inst, idx] = d
        sae.W_enc.data[inst][:, idx] = d.T * resample_scale * sc
        sae.b_enc.data[inst, idx] = 0.0


def test_fresh48_scale_mean_over_all_after_zeroing_dead_named():
    failure = assert_fails(checks.test_resample_advanced, _ra_live_after, "dead_zeros_averaged")
    assert "counted as 0" in failure.message and "live latents only" in failure.hint


# ---------------- W_dec_normalized: the eps put elsewhere than on the norm
def _norm(fn):
    return _with(W_dec_normalized=property(lambda self: fn(self.W_dec, self.cfg.weight_normalize_eps)))


def test_fresh48_eps_added_to_entries_named():
    impl = _norm(lambda W, eps: W / (W + eps).norm(dim=-1, keepdim=True))
    failure = assert_fails(checks.test_W_dec_normalized, impl, "eps_placement")
    assert "eps added to every entry before the norm" in failure.message
