"""Proofs for part 5's probes added after the fresh8 held-out measurement (`tests.part5_toy_saes_probes`): the
toy model kept as a frozen copy (allowed: the docstring says "keep a frozen copy"), generate_batch reading
another instance's features, a per-instance resampling loop that stops at an instance with no dead latent, and
advanced resampling's encoder lengths (the dead latents' mean norm, an unnormalised input)."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import solutions.part5_toy_saes as P
import tests.part5_toy_saes as checks
from tests.proving import assert_fails, assert_passes


def _with(**methods) -> type:
    return type("Heldout2ToySAE", (P.ToySAE,), methods)


def _init(keep) -> type:
    def __init__(self, cfg, model=None):
        nn.Module.__init__(self)
        self.cfg, self.model = cfg, (keep(model) if model is not None else None)
        n, d, s = cfg.n_inst, cfg.d_in, cfg.d_sae
        self.W_enc = nn.Parameter(nn.init.kaiming_uniform_(torch.empty(n, d, s)))
        self._W_dec = None if cfg.tied_weights else nn.Parameter(self.W_enc.detach().mT.clone())
        self.b_enc, self.b_dec = nn.Parameter(torch.zeros(n, s)), nn.Parameter(torch.zeros(n, d))
        self.register_buffer("sparsity_coeff", torch.full((n,), 0.1))

    return _with(__init__=__init__)


def test_init_frozen_copy_passes():  # "keep a frozen copy of the toy model": the SAE only reads from it
    assert_passes(checks.test_init, _init(lambda m: copy.deepcopy(m).requires_grad_(False)))


def test_init_copy_not_frozen():
    assert_fails(checks.test_init, _init(copy.deepcopy), "model_not_frozen")


def test_init_other_model():  # a copy whose weights differ is not the toy model
    def other(m):
        twin = copy.deepcopy(m).requires_grad_(False)
        with torch.no_grad():
            twin.W.add_(1.0)
        m.requires_grad_(False)
        return twin

    assert_fails(checks.test_init, _init(other), "model_missing")


def _reads(source) -> type:
    """generate_batch where instance i's h is W[i] applied to the features of instance source(i, n_inst)."""

    def generate_batch(self, n):
        x, W = self.model.generate_batch(n), self.model.W
        k = self.model.cfg.n_inst
        return torch.stack([x[:, source(i, k)] @ W[i].T for i in range(k)], dim=1)

    return _with(generate_batch=generate_batch)


def test_generate_batch_features_of_instance_0():
    err = assert_fails(checks.test_generate_batch, _reads(lambda i, k: 0), "features_of_one_instance")
    assert "features[:, 0]" in err.message


def test_generate_batch_features_rolled():
    assert_fails(checks.test_generate_batch, _reads(lambda i, k: (i + 1) % k), "instances_mixed_up")


def _simple_loop(stop):
    def resample(sae, frac, resample_scale):
        dead = (frac <= 0).all(0)
        for i in range(sae.cfg.n_inst):
            idx = dead[i].nonzero().squeeze(-1)
            if idx.numel() == 0:
                if stop == "return":
                    return
                if stop == "break":
                    break
                continue
            v = F.normalize(torch.randn(idx.numel(), sae.cfg.d_in), dim=-1)
            sae.W_dec.data[i, idx] = v
            sae.W_enc.data[i][:, idx] = v.T * resample_scale
            sae.b_enc.data[i, idx] = 0.0

    return resample


@pytest.mark.parametrize("stop", ["return", "break"])
def test_resample_simple_loop_stops(stop):
    err = assert_fails(checks.test_resample_simple, _simple_loop(stop), "loop_stopped")
    assert "instance 1 has no dead latent" in err.message


def test_resample_simple_loop_continues():
    assert_passes(checks.test_resample_simple, _simple_loop("continue"))


def _advanced(norms_of="live", direction="unit"):
    def resample(sae, frac, resample_scale, batch_size):
        dead = (frac <= 0).all(dim=0)
        h = sae.generate_batch(batch_size)
        weights = sae.forward(h)[0]["L_reconstruction"].pow(2)
        for i in range(sae.cfg.n_inst):
            idx = dead[i].nonzero().squeeze(-1)
            w = weights[:, i]
            if idx.numel() == 0 or w.sum() <= 0:
                continue
            raw = h[torch.multinomial(w, idx.numel(), replacement=True), i] - sae.b_dec[i]
            v = raw / raw.norm(dim=-1, keepdim=True)
            mask = ~dead[i] if norms_of == "live" else dead[i]
            scale = sae.W_enc[i][:, mask].norm(dim=0).mean() if mask.any() else 1.0
            enc = v if direction == "unit" else raw
            sae.W_dec.data[i, idx] = v
            sae.W_enc.data[i][:, idx] = enc.T * resample_scale * scale
            sae.b_enc.data[i, idx] = 0.0

    return resample


def test_resample_advanced_loop_passes():
    assert_passes(checks.test_resample_advanced, _advanced())


def test_resample_advanced_dead_latents_norm():
    assert_fails(checks.test_resample_advanced, _advanced(norms_of="dead"), "dead_latents_norm")


def test_resample_advanced_unnormalised_encoder():
    assert_fails(checks.test_resample_advanced, _advanced(direction="raw"), "enc_unnormalised_input")
