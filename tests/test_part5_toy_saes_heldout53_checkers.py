"""Proofs for part 5 from held-out round AZ (fresh53).

* generate_batch that draws more examples than asked and keeps a slice or a random subset (a correct batch) passes:
  the checker no longer crashes reading a draw of another batch size, and a mistake on such a draw is still named.
* generate_batch with the features thresholded to 0/1 (`features_thresholded`, threshold read back) or with W
  centred over the features (`weights_transformed`).
* resample_simple and resample_advanced with a small threshold as the dead rule (`frac.mean(0) < 1e-4`,
  `frac.sum(0) < 1e-3`): a latent that fired once, faintly, is resampled (`faint_threshold`); a max threshold
  (`frac.amax(0) < 1e-3`) is listed with the sum threshold that picks the same latents (`threshold_rule`); a float
  guard (`frac.sum(0) <= 1e-6`) passes.
* resample_simple's encoder length read back as a rule: √s, s², 1 - s, s·√d_in, s / d_in, s × the old column's norm
  (each its own code).
* resample_simple with normalised Laplace draws: named as crowding towards the axes (`axes_not_sphere`), not as
  the cube's corners; coordinates drawn with different scales (`anisotropic_draw`); the new direction taken from
  the old encoder column (`old_direction_reused`) or the old row plus noise (`draw_mixed_with_old`); a draw with an
  offset (both signs, unequally often) is not called "made positive".
* resample_advanced's encoder scale from the mean |entry| of the live columns (`enc_norm_kind`) or from the latents
  above a window-mean threshold (`live_threshold`).
* the correct variants the round found (clamped norm, permuted axes, a forward subtracting b_dec · W_enc after
  encoding, no_grad writes, one multinomial over [inst batch]) pass.
* forward: a loss's "count off by one" reason is kept only when a second batch confirms it (a factor that fits
  n_inst / (n_inst - 1) by coincidence names nothing); sqrt(sparsity_coeff) read back (`coeff_transformed`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

import solutions.part5_toy_saes as P
import tests.part5_toy_saes as checks
from tests.proving import assert_fails, assert_passes
from tests.test_part5_toy_saes_heldout45_checkers import resample_advanced_with


def _gen(variant):
    def generate_batch(self, batch_size):
        if variant in ("slice", "slice_relu"):
            x = self.model.generate_batch(2 * batch_size)[:batch_size]
        elif variant == "subset":
            x = self.model.generate_batch(3 * batch_size)
            x = x[torch.randperm(3 * batch_size)[:batch_size]]
        else:
            x = self.model.generate_batch(batch_size + 3)[3:]
        h = torch.einsum("bif,idf->bid", x, self.model.W)
        return h.relu() if variant == "slice_relu" else h

    return type("GenV", (P.ToySAE,), {"generate_batch": generate_batch})


def test_fresh53_generate_batch_larger_draw_sliced_passes():
    for variant in ("slice", "subset", "tail"):
        assert_passes(checks.test_generate_batch, _gen(variant))


def test_fresh53_generate_batch_larger_draw_mistake_still_named():
    assert_fails(checks.test_generate_batch, _gen("slice_relu"), "relu")


def _rs_threshold(rule):
    def resample(sae, frac, resample_scale):
        dead = {
            "mean": frac.mean(0) < 1e-4,
            "sum": frac.sum(0) < 1e-3,
            "max": frac.amax(0) < 1e-3,
            "guard": frac.sum(0) <= 1e-6,  # a float guard far below any real fraction: correct
        }[rule]
        n = int(dead.sum())
        if n == 0:
            return
        v = torch.randn(n, sae.cfg.d_in)
        v = v / v.norm(dim=-1, keepdim=True)
        sae.W_dec.data[dead] = v
        sae.W_enc.data.transpose(-1, -2)[dead] = v * resample_scale
        sae.b_enc.data[dead] = 0.0

    return resample


def test_fresh53_resample_simple_small_threshold_dead_rule_is_caught():
    for rule in ("mean", "sum"):
        failure = assert_fails(checks.test_resample_simple, _rs_threshold(rule), "faint_threshold")
        assert "fired at one step of the window" in failure.message


def _ra_threshold(sae, frac, resample_scale, batch_size):
    dead = frac.mean(0) < 1e-4  # the solution's rule with a threshold: the faint latents count as dead
    P.resample_advanced(
        sae, torch.where(dead, torch.zeros_like(frac), frac.clamp_min(1e-3)), resample_scale, batch_size
    )


def test_fresh53_resample_advanced_small_threshold_dead_rule_is_caught():
    assert_fails(checks.test_resample_advanced, _ra_threshold, "faint_threshold")


def _rs_enc(rule):
    def resample(sae, frac, s):
        dead = (frac <= 0).all(dim=0)
        n = int(dead.sum())
        if n == 0:
            return
        v = torch.randn(n, sae.cfg.d_in)
        v = v / v.norm(dim=-1, keepdim=True)
        old = sae.W_enc.data.transpose(-1, -2)[dead].norm(dim=-1, keepdim=True)
        factor = {
            "sqrt": s**0.5,
            "square": s**2,
            "one_minus": 1 - s,
            "sqrt_d": s * sae.cfg.d_in**0.5,
            "over_d": s / sae.cfg.d_in,
            "old": s * old,
        }[rule]
        sae.W_dec.data[dead] = v
        sae.W_enc.data.transpose(-1, -2)[dead] = v * factor
        sae.b_enc.data[dead] = 0.0

    return resample


def test_fresh53_resample_simple_encoder_length_rules_are_read_back():
    for rule, code in (
        ("sqrt", "enc_sqrt_scale"),
        ("square", "enc_scale_squared"),
        ("one_minus", "enc_one_minus_scale"),
        ("sqrt_d", "enc_times_sqrt_d_in"),
        ("over_d", "enc_over_d_in"),
        ("old", "enc_old_length_scaled"),
    ):
        assert_fails(checks.test_resample_simple, _rs_enc(rule), code)


def _rs_laplace(sae, frac, resample_scale):
    dead = (frac <= 0).all(dim=0)
    v = torch.distributions.Laplace(0.0, 1.0).sample((int(dead.sum()), sae.cfg.d_in))
    v = v / v.norm(dim=-1, keepdim=True)
    sae.W_dec.data[dead] = v
    sae.W_enc.data.transpose(-1, -2)[dead] = v * resample_scale
    sae.b_enc.data[dead] = 0.0


def test_fresh53_resample_simple_heavy_tailed_draw_is_not_called_a_cube():
    failure = assert_fails(checks.test_resample_simple, _rs_laplace, "axes_not_sphere")
    assert "towards the coordinate axes" in failure.message and "corners" not in failure.hint


def _fwd_rec_part(variant):
    def forward(self, h):
        acts = F.relu(torch.einsum("bid,ids->bis", h - self.b_dec, self.W_enc) + self.b_enc)
        h_rec = torch.einsum("bis,isd->bid", acts, self.W_dec_normalized) + self.b_dec
        L_rec, L_sp = (h_rec - h).pow(2).mean(-1), acts.sum(-1)
        if variant == "unbiased_batch":  # a real count off by one: the batch sum divided by batch - 1
            rec = L_rec.sum(0).sum() / (h.shape[0] - 1)
        else:  # 1.5 × on the checker's batch of 32 only: a factor that fits n_inst / (n_inst - 1) by coincidence
            rec = L_rec.mean(0).sum() * (1.5 if h.shape[0] == 32 else 1.2)
        loss = rec + (self.sparsity_coeff * L_sp).mean(0).sum()
        return {"L_reconstruction": L_rec, "L_sparsity": L_sp}, loss, acts, h_rec

    return type("FwdV", (P.ToySAE,), {"forward": forward})


def test_fresh53_forward_loss_count_reason_needs_a_second_batch():
    failure = assert_fails(checks.test_forward, _fwd_rec_part("unbiased_batch"), "loss_parts")
    assert "off by one" in failure.message and "32/31" in failure.message
    failure = assert_fails(checks.test_forward, _fwd_rec_part("coincidence"), "loss_parts")
    assert "1.5 × the expected" in failure.message and "off by one" not in failure.message


def _ra_scale(rule):
    if rule == "mean_abs":
        return resample_advanced_with(live_scale=lambda sae, k, dead, frac: sae.W_enc[k][:, ~dead[k]].abs().mean())
    # live = window mean above 1%: the rarely firing live latents left out
    return resample_advanced_with(
        live_scale=lambda sae, k, dead, frac: sae.W_enc[k][:, frac[:, k].mean(0) > 0.01].norm(dim=0).mean()
    )


def test_fresh53_resample_advanced_live_scale_rules_are_read_back():
    failure = assert_fails(checks.test_resample_advanced, _ra_scale("mean_abs"), "enc_norm_kind")
    assert "mean |entry|" in failure.message
    failure = assert_fails(checks.test_resample_advanced, _ra_scale("threshold"), "live_threshold")
    assert "window mean (or sum) is above a threshold" in failure.message


def _gen_edit(rule):
    def generate_batch(self, batch_size):
        x = self.model.generate_batch(batch_size)
        W = self.model.W
        if rule == "binarised":
            x = (x > 0.5).float()
        else:
            W = W - W.mean(-1, keepdim=True)
        return torch.einsum("bif,idf->bid", x, W)

    return type("GenV", (P.ToySAE,), {"generate_batch": generate_batch})


def test_fresh53_generate_batch_feature_and_weight_edits_are_read_back():
    failure = assert_fails(checks.test_generate_batch, _gen_edit("binarised"), "features_thresholded")
    assert "features > 0.5" in failure.message
    failure = assert_fails(checks.test_generate_batch, _gen_edit("centred"), "weights_transformed")
    assert "centred over feats" in failure.message


def _fwd_coeff_sqrt():
    def forward(self, h):
        acts = F.relu(torch.einsum("bid,ids->bis", h - self.b_dec, self.W_enc) + self.b_enc)
        h_rec = torch.einsum("bis,isd->bid", acts, self.W_dec_normalized) + self.b_dec
        L_rec, L_sp = (h_rec - h).pow(2).mean(-1), acts.sum(-1)
        loss = (L_rec + self.sparsity_coeff.sqrt() * L_sp).mean(0).sum()
        return {"L_reconstruction": L_rec, "L_sparsity": L_sp}, loss, acts, h_rec

    return type("FwdV", (P.ToySAE,), {"forward": forward})


def test_fresh53_forward_transformed_coefficient_is_read_back():
    failure = assert_fails(checks.test_forward, _fwd_coeff_sqrt(), "coeff_transformed")
    assert "√sparsity_coeff" in failure.message


def _norm_ok(variant):
    def W_dec_normalized(self):
        W, eps = self.W_dec, self.cfg.weight_normalize_eps
        if variant == "clamp":  # max(norm, eps), as F.normalize: equal to norm + eps within float32 here
            return W / W.norm(dim=-1, keepdim=True).clamp_min(eps)
        Wt = W.permute(2, 1, 0)
        return (Wt / (Wt.norm(dim=0) + eps)).permute(2, 1, 0)

    return type("NormV", (P.ToySAE,), {"W_dec_normalized": property(W_dec_normalized)})


def _fwd_ok(self, h):
    pre = torch.einsum("bid,ids->bis", h, self.W_enc) - torch.einsum("id,ids->is", self.b_dec, self.W_enc)
    acts = torch.clamp(pre + self.b_enc, min=0)
    dec = (acts.unsqueeze(-2) @ self.W_dec_normalized).squeeze(-2)
    L_rec = F.mse_loss(dec, h - self.b_dec, reduction="none").mean(-1)  # W z - (h - b_dec) = h_rec - h
    L_sp = acts.norm(p=1, dim=-1)
    loss = (L_rec + L_sp * self.sparsity_coeff[None, :]).sum(1).mean()
    return {"L_reconstruction": L_rec, "L_sparsity": L_sp}, loss, acts, dec + self.b_dec


def _rs_ok(sae, frac, resample_scale):
    dead = frac.sum(0) == 0
    n = int(dead.sum())
    if n == 0:
        return
    v = torch.distributions.MultivariateNormal(torch.zeros(sae.cfg.d_in), torch.eye(sae.cfg.d_in)).sample((n,))
    v = v / v.norm(dim=-1, keepdim=True)
    with torch.no_grad():  # writing through the parameters themselves, not .data
        sae.W_dec[dead] = v
        sae.W_enc.transpose(-1, -2)[dead] = v * resample_scale
        sae.b_enc[dead] = 0


def _ra_ok(sae, frac, resample_scale, batch_size):
    """One multinomial over [inst batch] weights (n_max picks each), sliced per instance; sae(h) for the losses."""
    dead = (frac <= 0).all(0)
    h = sae.generate_batch(batch_size)
    w = sae(h)[0]["L_reconstruction"].detach().T.pow(2)  # [inst batch]
    n = dead.sum(-1)
    if int(n.max()) == 0:
        return
    ok = w.sum(-1) > 0
    picks = torch.multinomial(torch.where(ok[:, None], w, torch.ones_like(w)), int(n.max()), replacement=True)
    for k in range(sae.cfg.n_inst):
        if not ok[k] or n[k] == 0:
            continue
        live = sae.W_enc[k][:, ~dead[k]].norm(dim=0)
        scale = live.mean() if live.numel() else 1.0
        idx = dead[k].nonzero()[:, 0]
        d = F.normalize(h[picks[k, : int(n[k])], k] - sae.b_dec[k], dim=-1)
        sae.W_dec.data[k, idx] = d
        sae.W_enc.data[k][:, idx] = d.T * resample_scale * scale
        sae.b_enc.data[k, idx] = 0


def test_fresh53_correct_variants_pass():
    assert_passes(checks.test_W_dec_normalized, _norm_ok("clamp"))
    assert_passes(checks.test_W_dec_normalized, _norm_ok("permuted"))
    assert_passes(checks.test_forward, type("FwdV", (P.ToySAE,), {"forward": _fwd_ok}))
    assert_passes(checks.test_resample_simple, _rs_ok)
    assert_passes(checks.test_resample_advanced, _ra_ok)


def _rs_draw(rule):
    def resample(sae, frac, resample_scale):
        dead = (frac <= 0).all(dim=0)
        n, d_in = int(dead.sum()), sae.cfg.d_in
        if rule == "anisotropic":
            v = torch.randn(n, d_in) * torch.arange(1, d_in + 1)
        elif rule == "shifted":
            v = torch.randn(n, d_in) + 0.3
        elif rule == "old_encoder":
            v = sae.W_enc.data.transpose(-1, -2)[dead].clone()
        else:  # the old decoder row plus noise
            v = torch.randn(n, d_in) + sae.W_dec.data[dead]
        v = v / v.norm(dim=-1, keepdim=True)
        sae.W_dec.data[dead] = v
        sae.W_enc.data.transpose(-1, -2)[dead] = v * resample_scale
        sae.b_enc.data[dead] = 0.0

    return resample


def test_fresh53_resample_simple_draws_tied_to_scales_or_old_weights_are_named():
    assert_fails(checks.test_resample_simple, _rs_draw("anisotropic"), "anisotropic_draw")
    assert_fails(checks.test_resample_simple, _rs_draw("old_encoder"), "old_direction_reused")
    assert_fails(checks.test_resample_simple, _rs_draw("old_plus_noise"), "draw_mixed_with_old")


def test_fresh53_resample_simple_offset_draw_is_not_called_positive():
    failure = assert_fails(checks.test_resample_simple, _rs_draw("shifted"), "not_isotropic")
    assert "an offset added to the draw" in failure.hint and ".abs()" not in failure.hint


def test_fresh53_resample_simple_max_threshold_is_listed():
    failure = assert_fails(checks.test_resample_simple, _rs_threshold("max"), "threshold_rule")
    assert "amax(0) below a threshold" in failure.message


def test_fresh53_resample_simple_float_guard_passes():
    assert_passes(checks.test_resample_simple, _rs_threshold("guard"))
