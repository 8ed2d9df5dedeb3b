"""Proofs for part 5's diagnoses added after the fresh9 held-out measurement: an untied decoder cloned before
W_enc was initialised (all zeros), h mapped through unit feature directions, the forward normalising h or
decoding every instance with instance 0's decoder, a dead mask thresholding the window's summed fractions at 1,
and advanced resampling weighted by the error's norm (indistinguishable from a softmax: both listed) or by the
losses of sae.forward(h - b_dec); after fresh11, a seed inside __init__ and a cached W_dec_normalized; after
fresh12, a forward reading self._W_dec (None when tied) and the live-norm mean over another set of latents."""

from __future__ import annotations

import functools

import einops
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import solutions.part5_toy_saes as P
import tests.part5_toy_saes as checks
from tests.proving import assert_fails


def _with(**methods) -> type:
    return type("Heldout3ToySAE", (P.ToySAE,), methods)


def test_init_decoder_cloned_before_init():
    def __init__(self, cfg, model=None):
        nn.Module.__init__(self)
        self.cfg, self.model = cfg, model.requires_grad_(False)
        n, d, s = cfg.n_inst, cfg.d_in, cfg.d_sae
        self.W_enc = nn.Parameter(torch.zeros(n, d, s))
        self._W_dec = None if cfg.tied_weights else nn.Parameter(self.W_enc.detach().mT.clone())
        with torch.no_grad():
            nn.init.kaiming_uniform_(self.W_enc)
        self.b_enc, self.b_dec = nn.Parameter(torch.zeros(n, s)), nn.Parameter(torch.zeros(n, d))
        self.register_buffer("sparsity_coeff", torch.full((n,), 0.1))

    assert "cloned" in assert_fails(checks.test_init, _with(__init__=__init__), "decoder_zero").hint


def test_generate_batch_unit_feature_directions():
    def generate_batch(self, n):
        W = self.model.W / self.model.W.norm(dim=1, keepdim=True)
        return einops.einsum(self.model.generate_batch(n), W, "b i f, i d f -> b i d")

    assert_fails(checks.test_generate_batch, _with(generate_batch=generate_batch), "unit_feature_directions")


def _forward(bug):
    def forward(self, h):
        if bug == "input_normalised":
            h = h / h.norm(dim=-1, keepdim=True)
        acts = F.relu(einops.einsum(h - self.b_dec, self.W_enc, "b i d, i d s -> b i s") + self.b_enc)
        Wn = self.W_dec_normalized
        Wn = Wn[:1].expand_as(Wn) if bug == "decoder_first_instance" else Wn
        h_rec = einops.einsum(acts, Wn, "b i s, i s d -> b i d") + self.b_dec
        Lr, Ls = (h_rec - h).pow(2).mean(-1), acts.abs().sum(-1)
        return {"L_reconstruction": Lr, "L_sparsity": Ls}, (Lr + self.sparsity_coeff * Ls).mean(0).sum(), acts, h_rec

    return _with(forward=forward)


def test_forward_input_normalised():
    assert_fails(checks.test_forward, _forward("input_normalised"), "input_normalised")


def test_forward_decoder_first_instance():
    assert_fails(checks.test_forward, _forward("decoder_first_instance"), "decoder_first_instance")


def test_resample_simple_fractions_as_counts():
    def resample(sae, frac, resample_scale):
        dead = frac.sum(0) < 1
        v = F.normalize(torch.randn(int(dead.sum()), sae.cfg.d_in), dim=-1)
        sae.W_dec.data[dead] = v
        sae.W_enc.data.transpose(-1, -2)[dead] = v * resample_scale
        sae.b_enc.data[dead] = 0.0

    assert "all(dim=0)" in assert_fails(checks.test_resample_simple, resample, "threshold_rule").hint


def _advanced(bug, live=lambda frac, dead: ~dead):
    def resample(sae, frac, resample_scale, batch_size):
        dead = (frac <= 0).all(dim=0)
        h = sae.generate_batch(batch_size)
        with torch.no_grad():
            ld, _, _, h_rec = sae.forward(h - sae.b_dec if bug == "input_minus_b_dec" else h)
        for inst in range(sae.cfg.n_inst):
            idx = torch.where(dead[inst])[0]
            err = (h[:, inst] - h_rec[:, inst]).norm(dim=-1)
            w = err if bug == "sqrt" else ld["L_reconstruction"][:, inst].pow(2)
            if len(idx) == 0 or float(w.sum()) <= 0:
                continue
            d = F.normalize(h[torch.multinomial(w, len(idx), replacement=True), inst] - sae.b_dec[inst], dim=-1)
            scale = sae.W_enc[inst][:, live(frac, dead)[inst]].norm(dim=0).mean()
            sae.W_dec.data[inst, idx] = d.detach()
            sae.W_enc.data[inst][:, idx] = (d * resample_scale * scale).T.detach()
            sae.b_enc.data[inst, idx] = 0.0

    return resample


def test_resample_advanced_error_norm():  # ∝ loss^½: a softmax of the losses gives nearly the same rates
    err = assert_fails(checks.test_resample_advanced, _advanced("sqrt"), "sampling_softmax")
    assert "square root" in err.hint and "softmax" in err.hint


def test_resample_advanced_input_minus_b_dec():
    err = assert_fails(checks.test_resample_advanced, _advanced("input_minus_b_dec"), "sampling_input_minus_b_dec")
    assert "subtracted twice" in err.hint


# fresh11: a seed inside __init__, and a W_dec_normalized computed once and cached
def test_init_seeded_inside():
    base = P.ToySAE.__init__

    def __init__(self, cfg, model=None):
        torch.manual_seed(0)
        base(self, cfg, model)

    assert_fails(checks.test_init, _with(__init__=__init__), "seeded_init")


def test_W_dec_normalized_cached():
    def W_dec_normalized(self):
        return self.W_dec / (self.W_dec.norm(dim=-1, keepdim=True) + self.cfg.weight_normalize_eps)

    cached = functools.cached_property(W_dec_normalized)
    assert_fails(checks.test_W_dec_normalized, _with(W_dec_normalized=cached), "stale_normalized")


# fresh12: a forward normalising self._W_dec inline (None when tied); the live mean norm over another latent set
def test_forward_private_W_dec():
    def forward(self, h):
        acts = F.relu(einops.einsum(h - self.b_dec, self.W_enc, "b i d, i d s -> b i s") + self.b_enc)
        Wn = self._W_dec / (self._W_dec.norm(dim=-1, keepdim=True) + self.cfg.weight_normalize_eps)
        h_rec = einops.einsum(acts, Wn, "b i s, i s d -> b i d") + self.b_dec
        Lr, Ls = (h_rec - h).pow(2).mean(-1), acts.abs().sum(-1)
        return {"L_reconstruction": Lr, "L_sparsity": Ls}, (Lr + self.sparsity_coeff * Ls).mean(0).sum(), acts, h_rec

    assert "W_dec_normalized" in assert_fails(checks.test_forward, _with(forward=forward), "used_private_W_dec").hint


@pytest.mark.parametrize(
    "live, words",
    [
        (lambda frac, dead: frac[-1] > 0, "last step"),
        (lambda frac, dead: frac[0] > 0, "first step"),
        (lambda frac, dead: (frac > 0).all(0), "every step"),
    ],
)
def test_resample_advanced_live_set(live, words):
    assert words in assert_fails(checks.test_resample_advanced, _advanced(None, live), "live_set").message
