"""Proofs after the fresh47 fix round: W_enc drawn by kaiming on a tensor in another layout ([d_sae, inst, d_in]) and
permuted into place is named as that fan (not only as mode='fan_out', which gives the same bound); resample_advanced
drawing without replacement when it can (n_dead <= batch_size) is caught on a batch where one example dominates the
loss (sampled_without_replacement); and the round's correct variants."""

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
            device = model.W.device if model is not None else torch.device("cpu")
            if kind == "ok_loopfreeze":
                if model is not None:
                    for p in model.parameters():
                        p.requires_grad = False
                self.model = model
            else:
                self.model = model.requires_grad_(False) if model is not None else None
            if kind == "permuted":  # drawn [d_sae, inst, d_in], then permuted: kaiming's fan_in is inst * d_in
                W = torch.empty(cfg.d_sae, cfg.n_inst, cfg.d_in, device=device)
                W = nn.init.kaiming_uniform_(W).permute(1, 2, 0).contiguous()
            else:
                W = nn.init.kaiming_uniform_(torch.empty(cfg.n_inst, cfg.d_in, cfg.d_sae, device=device))
            self.W_enc = nn.Parameter(W)
            if cfg.tied_weights:
                self._W_dec = None
            else:  # clone first, transposed view after
                self._W_dec = nn.Parameter(self.W_enc.detach().clone().transpose(-1, -2))
            self.b_enc = nn.Parameter(torch.zeros(cfg.n_inst, cfg.d_sae, device=device))
            self.b_dec = nn.Parameter(torch.zeros(cfg.n_inst, cfg.d_in, device=device))
            coeff = torch.as_tensor(cfg.sparsity_coeff, dtype=torch.float32, device=device)
            self.register_buffer("sparsity_coeff", coeff.broadcast_to((cfg.n_inst,)).clone())

    return S


def test_init_drawn_in_other_layout_then_permuted_named():
    failure = assert_fails(checks.test_init, _init("permuted"), "init_scale")
    assert "another layout" in failure.message and "torch.empty(d_sae, inst, d_in)" in failure.message
    assert "mode='fan_out'" in failure.message  # same bound: both readings listed
    assert "permuted afterwards" in failure.hint


def test_init_loop_freeze_clone_then_transpose_passes():
    assert_passes(checks.test_init, _init("ok_loopfreeze"))


def _norm_linalg_ord2_add(self):
    W = self.W_dec
    return W / torch.linalg.norm(W, ord=2, dim=-1, keepdim=True).add(self.cfg.weight_normalize_eps)


def test_norm_linalg_ord2_add_passes():
    impl = type("NormV", (P.ToySAE,), {"W_dec_normalized": property(_norm_linalg_ord2_add)})
    assert_passes(checks.test_W_dec_normalized, impl)


def _gen_two_halves(self, batch_size):
    n1 = batch_size // 2
    f = torch.cat([self.model.generate_batch(n1), self.model.generate_batch(batch_size - n1)], dim=0)
    return (f.unsqueeze(-2) * self.model.W.unsqueeze(0)).sum(-1)


def test_generate_batch_two_half_draws_broadcast_passes():
    assert_passes(checks.test_generate_batch, type("MV", (P.ToySAE,), {"generate_batch": _gen_two_halves}))


def _forward_sum_inst_then_mean(self, h):
    pre = einops.einsum(h - self.b_dec, self.W_enc, "b i d, i d s -> b i s")
    acts = F.relu(pre + self.b_enc)
    h_rec = einops.einsum(acts, self.W_dec_normalized, "b i s, i s d -> b i d") + self.b_dec
    L_rec = (h_rec - h).pow(2).mean(-1)
    L_sp = acts.sum(-1)  # no abs: acts >= 0
    loss = (L_rec + self.sparsity_coeff * L_sp).sum(-1).mean()
    return {"L_reconstruction": L_rec, "L_sparsity": L_sp}, loss, acts, h_rec


def test_forward_sum_inst_then_mean_no_abs_passes():
    assert_passes(checks.test_forward, type("FwdV", (P.ToySAE,), {"forward": _forward_sum_inst_then_mean}))


def _rs_full_draw_masked(sae, frac, resample_scale):
    dead = frac.amax(0) == 0
    if not dead.any():
        return
    v = torch.randn(sae.cfg.n_inst, sae.cfg.d_sae, sae.cfg.d_in, device=sae.W_enc.device)
    v = v / v.norm(dim=-1, keepdim=True)
    sae.W_dec.data[dead] = v[dead]
    sae.W_enc.data.mT[dead] = resample_scale * v[dead]
    sae.b_enc.data.masked_fill_(dead, 0.0)


def test_resample_simple_full_draw_masked_passes():
    assert_passes(checks.test_resample_simple, _rs_full_draw_masked)


def _ra(kind):
    def resample(sae, frac, resample_scale, batch_size):
        dead = (frac <= 0).all(dim=0)
        h = sae.generate_batch(batch_size)
        out = sae.forward(h)
        l2 = out[0]["L_reconstruction"]
        for inst in range(sae.cfg.n_inst):
            idx = dead[inst].nonzero().squeeze(-1)
            n = idx.numel()
            w = l2[:, inst].pow(2)
            if kind == "ok_sumsq":  # Σ squared error from forward's h_reconstructed, squared: ∝ L_rec²
                w = (out[3][:, inst] - h[:, inst]).pow(2).sum(-1).pow(2)
            if n == 0 or w.sum() <= 0:
                continue
            replacement = n > batch_size if kind == "repl_when_needed" else True
            picked = torch.multinomial(w, n, replacement=replacement)
            d = h[picked, inst] - sae.b_dec[inst]
            d = d / d.norm(dim=-1, keepdim=True).clamp_min(1e-12)
            norms = sae.W_enc[inst][:, ~dead[inst]].norm(dim=0)
            sc = norms.mean() if norms.numel() > 0 else 1.0
            sae.W_dec.data[inst, idx] = d
            sae.W_enc.data[inst][:, idx] = d.T * resample_scale * sc
            sae.b_enc.data[inst, idx] = 0.0

    return resample


def test_resample_advanced_replacement_only_when_forced_caught():
    failure = assert_fails(checks.test_resample_advanced, _ra("repl_when_needed"), "sampled_without_replacement")
    assert "without replacement" in failure.message and "replacement=True" in failure.hint


def test_resample_advanced_sum_sq_error_squared_passes():
    assert_passes(checks.test_resample_advanced, _ra("ok_sumsq"))
