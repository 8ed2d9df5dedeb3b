"""Proofs for part 5's diagnoses added after the fresh19 held-out measurement: a parameter whose instances share
one storage (.expand), generate_batch zeroing whole examples (a mask from a second draw) or dividing h by a batch
statistic per coordinate, a smooth nonlinearity (GELU) in place of ReLU, and advanced resampling subtracting
another instance's b_dec. After fresh22: W_dec_normalized with eps inside the square root or a too-large eps / clamp
(a short decoder row shows both), and the correct placements of eps that must still pass."""

from __future__ import annotations

import einops
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import solutions.part5_toy_saes as P
import tests.part5_toy_saes as checks
from tests.proving import assert_fails, assert_passes


def test_init_b_dec_expanded():
    class Expanded(P.ToySAE):
        def __init__(self, cfg, model=None):
            super().__init__(cfg, model)
            self.b_dec = nn.Parameter(torch.zeros(cfg.d_in).expand(cfg.n_inst, -1))

    failure = assert_fails(checks.test_init, Expanded, "shared_storage")
    assert "b_dec" in failure.message and "expand" in failure.hint


def _generate(post):
    def generate_batch(self, batch_size):
        h = einops.einsum(self.model.generate_batch(batch_size), self.model.W, "b i f, i d f -> b i d")
        return post(self, h, batch_size)

    return type("G", (P.ToySAE,), {"generate_batch": generate_batch})


def test_generate_batch_masked_by_second_draw():
    impl = _generate(lambda self, h, n: h * (self.model.generate_batch(n).sum(-1, keepdim=True) > 0))
    assert_fails(checks.test_generate_batch, impl, "examples_zeroed")


def test_generate_batch_divided_by_batch_statistics():
    failure = assert_fails(checks.test_generate_batch, _generate(lambda s, h, n: h / h.std(0)), "batch_scaled")
    assert "h.std(0)" in failure.message
    failure = assert_fails(checks.test_generate_batch, _generate(lambda s, h, n: h / h.norm(dim=0)), "batch_scaled")
    assert "h.norm(dim=0)" in failure.message


def test_forward_gelu():
    def forward(self, h):
        acts = F.gelu(einops.einsum(h - self.b_dec, self.W_enc, "b i d, i d s -> b i s") + self.b_enc)
        h_rec = einops.einsum(acts, self.W_dec_normalized, "b i s, i s d -> b i d") + self.b_dec
        rec, sp = (h_rec - h).pow(2).mean(-1), acts.abs().sum(-1)
        return {"L_reconstruction": rec, "L_sparsity": sp}, (rec + self.sparsity_coeff * sp).mean(0).sum(), acts, h_rec

    failure = assert_fails(checks.test_forward, type("F", (P.ToySAE,), {"forward": forward}), "gelu")
    assert "GELU" in failure.hint


def test_resample_advanced_instance_0_b_dec():
    def resample_advanced(sae, frac_active_in_window, resample_scale, batch_size):
        dead = (frac_active_in_window <= 0).all(dim=0)
        h = sae.generate_batch(batch_size)
        l2 = sae.forward(h)[0]["L_reconstruction"]
        for inst in range(sae.cfg.n_inst):
            idx, w = torch.where(dead[inst])[0], l2[:, inst].pow(2)
            if len(idx) == 0 or w.sum() <= 0:
                continue
            d = h[torch.multinomial(w, len(idx), replacement=True), inst] - sae.b_dec[0]  # instance 0's b_dec
            d = d / d.norm(dim=-1, keepdim=True)
            norms = sae.W_enc[inst][:, ~dead[inst]].norm(dim=0)
            sae.W_dec.data[inst, idx] = d
            sae.W_enc.data[inst][:, idx] = (d * resample_scale * norms.mean()).T
            sae.b_enc.data[inst, idx] = 0.0

    failure = assert_fails(checks.test_resample_advanced, resample_advanced, "b_dec_other_instance")
    assert "b_dec[0]" in failure.message


# fresh21: every size of the checker's config distinct (n_inst 3, d_in 4, d_sae 7), so factors and fans name one size
def test_init_kaiming_fan_out_named():
    class FanOut(P.ToySAE):
        def __init__(self, cfg, model=None):
            super().__init__(cfg, model)
            with torch.no_grad():
                nn.init.kaiming_uniform_(self.W_enc, mode="fan_out")
                if self._W_dec is not None:
                    self._W_dec.copy_(self.W_enc.transpose(-1, -2))

    failure = assert_fails(checks.test_init, FanOut, "init_scale")
    assert "mode='fan_out'" in failure.message and "n_inst·d_sae" in failure.message


def test_W_dec_normalized_rms_rows_name_d_in():
    rms = lambda self: self.W_dec / (self.W_dec.pow(2).mean(-1, keepdim=True).sqrt() + self.cfg.weight_normalize_eps)
    failure = assert_fails(
        checks.test_W_dec_normalized, type("R", (P.ToySAE,), {"W_dec_normalized": property(rms)}), "scale"
    )
    assert "d_in" in failure.hint and "`inst`" not in failure.hint


def test_resample_advanced_sum_of_live_norms():
    def resample(sae, frac, resample_scale, batch_size):
        before = sae.W_enc.detach().clone()
        n_live = (frac > 0).any(0).sum(-1)  # [inst]
        P.resample_advanced(sae, frac, resample_scale, batch_size)
        with torch.no_grad():
            changed = (sae.W_enc != before).any(1)  # [inst d_sae]
            sae.W_enc.mul_(torch.where(changed, n_live[:, None].to(sae.W_enc.dtype), 1.0)[:, None, :])

    failure = assert_fails(checks.test_resample_advanced, resample, "enc_count_factor")
    assert "live latents" in failure.message


# fresh22: eps inside the square root of W_dec_normalized, seen on a decoder row of norm 5e-4 (P.SHORT_ROW)
def _normalized(fn):
    return type("N", (P.ToySAE,), {"W_dec_normalized": property(fn)})


def test_W_dec_normalized_eps_inside_sqrt():
    def inside(self):
        return self.W_dec / (self.W_dec.pow(2).sum(-1, keepdim=True) + self.cfg.weight_normalize_eps).sqrt()

    failure = assert_fails(checks.test_W_dec_normalized, _normalized(inside), "eps_in_sqrt")
    assert "inside the square root" in failure.hint
    fixed = _normalized(lambda self: self.W_dec / torch.sqrt((self.W_dec**2).sum(-1, keepdim=True) + 1e-8))
    assert_fails(checks.test_W_dec_normalized, fixed, "eps_in_sqrt")


@pytest.mark.parametrize(
    "norm",
    [
        lambda W: W.norm(dim=-1, keepdim=True).clamp_min(1e-3),  # a clamp far above the config's eps
        lambda W: W.norm(dim=-1, keepdim=True) + 1e-6,  # a hard-coded eps 100 times the config's
    ],
)
def test_W_dec_normalized_short_row_shortened(norm):
    failure = assert_fails(
        checks.test_W_dec_normalized, _normalized(lambda self: self.W_dec / norm(self.W_dec)), "short_row"
    )
    assert "weight_normalize_eps" in failure.hint and "short one" in failure.message


@pytest.mark.parametrize(
    "fn",
    [
        lambda s: F.normalize(s.W_dec, dim=-1, eps=s.cfg.weight_normalize_eps),
        lambda s: s.W_dec / s.W_dec.norm(dim=-1, keepdim=True).clamp_min(s.cfg.weight_normalize_eps),
        lambda s: s.W_dec * (s.W_dec.pow(2).sum(-1).sqrt() + s.cfg.weight_normalize_eps).reciprocal().unsqueeze(-1),
    ],
)
def test_W_dec_normalized_eps_placements_pass(fn):
    assert_passes(checks.test_W_dec_normalized, _normalized(fn))


# fresh23: an eps hard-coded at (or near) the default passed, since the checker used only the default config
@pytest.mark.parametrize(
    "fn",
    [
        lambda s: s.W_dec / (s.W_dec.norm(dim=-1, keepdim=True) + 1e-8),
        lambda s: s.W_dec / (torch.linalg.vector_norm(s.W_dec, dim=-1, keepdim=True) + 1e-9),
        lambda s: F.normalize(s.W_dec, dim=-1),  # max(norm, 1e-12)
        lambda s: s.W_dec / s.W_dec.norm(dim=-1, keepdim=True).clamp_min(1e-8),
    ],
)
def test_W_dec_normalized_hard_coded_eps(fn):
    failure = assert_fails(checks.test_W_dec_normalized, _normalized(fn), "hard_coded_eps")
    assert "weight_normalize_eps" in failure.hint


def test_W_dec_normalized_eps_used_twice():
    """The config's eps and a second one: right with the default, off by a factor with another eps."""
    eps = lambda s: s.cfg.weight_normalize_eps
    fn = lambda s: s.W_dec / (s.W_dec.norm(dim=-1, keepdim=True) + 3 * eps(s))
    assert_fails(checks.test_W_dec_normalized, _normalized(fn), "config_eps")
