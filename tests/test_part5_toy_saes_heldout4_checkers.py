"""Proofs for part 5's checks changed after the fresh13 held-out measurement: generate_batch accepts every correct
way of drawing (one draw per instance, one per example), not only one draw for the whole batch."""

from __future__ import annotations

import torch

import solutions.part5_toy_saes as P
import tests.part5_toy_saes as checks
from tests.proving import assert_fails, assert_passes


def _with(**methods) -> type:
    return type("Heldout4ToySAE", (P.ToySAE,), methods)


def test_generate_batch_one_draw_per_instance_passes():
    def generate_batch(self, batch_size):
        hs = [self.model.generate_batch(batch_size)[:, i] @ self.model.W[i].T for i in range(self.cfg.n_inst)]
        return torch.stack(hs, dim=1)

    assert_passes(checks.test_generate_batch, _with(generate_batch=generate_batch))


def test_generate_batch_one_draw_per_example_passes():
    def generate_batch(self, batch_size):
        xs = torch.cat([self.model.generate_batch(1) for _ in range(batch_size)])
        return torch.einsum("bif,idf->bid", xs, self.model.W)

    assert_passes(checks.test_generate_batch, _with(generate_batch=generate_batch))


def test_generate_batch_per_instance_draws_still_name_mistakes():
    def generate_batch(self, batch_size):  # per-instance draws, but h normalised: still named
        hs = [self.model.generate_batch(batch_size)[:, i] @ self.model.W[i].T for i in range(self.cfg.n_inst)]
        h = torch.stack(hs, dim=1)
        return h / (h.norm(dim=-1, keepdim=True) + 1e-8)

    assert_fails(checks.test_generate_batch, _with(generate_batch=generate_batch), "normalized_h")


def test_init_model_none_unguarded():
    base_init = P.ToySAE.__init__

    def __init__(self, cfg, model=None):
        model.requires_grad_(False)  # no `if model is not None`
        base_init(self, cfg, model)

    assert_fails(checks.test_init, _with(__init__=__init__), "model_none")


def test_resample_advanced_return_on_zero_instance():
    def resample_advanced(sae, frac_active_in_window, resample_scale, batch_size):
        dead = (frac_active_in_window <= 0).all(dim=0)
        h = sae.generate_batch(batch_size)
        l2 = sae.forward(h)[0]["L_reconstruction"]
        for inst in range(sae.cfg.n_inst):
            dead_idx = dead[inst].nonzero().squeeze(-1)
            weights = l2[:, inst].pow(2)
            if weights.sum() <= 0:
                return  # `continue` was meant: the instances after this one are skipped
            picked = torch.multinomial(weights, dead_idx.numel(), replacement=True)
            v = h[picked, inst] - sae.b_dec[inst]
            v = v / v.norm(dim=-1, keepdim=True)
            sae.W_dec.data[inst, dead_idx] = v
            live = sae.W_enc[inst, :, ~dead[inst]].norm(dim=0).mean()
            sae.W_enc.data[inst][:, dead_idx] = v.T * resample_scale * live
            sae.b_enc.data[inst, dead_idx] = 0.0

    assert "`continue`" in assert_fails(checks.test_resample_advanced, resample_advanced, "instances_skipped").hint
