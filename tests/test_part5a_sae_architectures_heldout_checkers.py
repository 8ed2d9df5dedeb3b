"""Proofs for the diagnoses added after the fresh held-out measurement: the gated magnitude ingredient, the
threshold-gradient window measured at two bandwidths, a constant TopK L_sparsity, a sparsity term in the TopK loss
(found by probing sparsity_coeff), and dead_latent_fraction with its axes swapped; then (fourth measurement) a
hard-coded bandwidth, ReLU(gate) in the gated SAE, a ratio off by a size, integer results."""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import solutions.part5a_sae_architectures as A
import tests.part5a_sae_architectures as checks
from tests.proving import assert_fails, assert_passes


def _gated_forward(acts_of):
    """A Gated forward whose activations are acts_of(proj, gate, sae); everything else as the reference."""

    def forward(self, h):
        x = h - self.b_dec
        proj = einops.einsum(x, self.W_enc, "b i d, i d s -> b i s")
        gate = proj + self.b_enc
        acts = acts_of(proj, gate, self)
        Wn = self.W_dec_normalized
        h_rec = einops.einsum(acts, Wn, "b i s, i s d -> b i d") + self.b_dec
        via = einops.einsum(F.relu(gate), Wn.detach(), "b i s, i s d -> b i d") + self.b_dec.detach()
        d = {
            "L_reconstruction": (h_rec - h).pow(2).mean(-1),
            "L_sparsity": F.relu(gate).sum(-1),
            "L_aux": (via - h).pow(2).mean(-1),
        }
        loss = (d["L_reconstruction"] + self.sparsity_coeff * d["L_sparsity"] + d["L_aux"]).mean(0).sum()
        return d, loss, acts, h_rec

    return forward


# the magnitude path reuses the gate's pre-activation (gate = proj + b_enc) instead of proj
_gated_gate_bias_in_mag = _gated_forward(
    lambda proj, gate, sae: (gate > 0).to(gate.dtype) * F.relu(gate * sae.r_mag.exp() + sae.b_mag)
)


def test_gated_magnitude_ingredient():
    cls = type("G", (A.GatedToySAE,), {"forward": _gated_gate_bias_in_mag})
    assert_fails(checks.test_gated_forward, cls, "gate_bias_in_mag")


class _HeavisideTimesEps(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, th, bw):
        ctx.save_for_backward(x, th)
        ctx.bw = bw
        return (x > th).to(x.dtype)

    @staticmethod
    def backward(ctx, g):
        x, th = ctx.saved_tensors
        u = (x - th) * ctx.bw
        return torch.zeros_like(x), -(u.abs() < 0.5).to(x.dtype) / ctx.bw * g, None


def test_heaviside_window_measured():
    err = assert_fails(checks.test_heaviside, _HeavisideTimesEps, "one_change")
    assert "`rectangle((x - threshold) * bw)` instead of `rectangle((x - threshold) / bw)`" in err.hint


def _topk(bug):
    def forward(self, h):
        pre = einops.einsum(h - self.b_dec, self.W_enc, "b i d, i d s -> b i s") + self.b_enc
        t = F.relu(pre).topk(self.cfg.k, dim=-1)
        acts = torch.zeros_like(pre).scatter(-1, t.indices, t.values)
        h_rec = einops.einsum(acts, self.W_dec_normalized, "b i s, i s d -> b i d") + self.b_dec
        L_rec = (h_rec - h).pow(2).mean(-1)
        L_sp = (acts > 0).to(h.dtype).sum(-1)
        loss = L_rec.mean(0).sum()
        if bug == "constant":
            L_sp = torch.full_like(L_rec, float(self.cfg.k))
        if bug == "loss_parts":
            loss = (L_rec + self.sparsity_coeff * acts.sum(-1)).mean(0).sum()
        return {"L_reconstruction": L_rec, "L_sparsity": L_sp}, loss, acts, h_rec

    return type("T", (A.TopKToySAE,), {"forward": forward})


def test_topk_diagnoses():
    assert_fails(checks.test_topk_forward, _topk("constant"), "constant")
    assert_fails(
        checks.test_topk_forward, _topk("loss_parts"), "sparsity_in_loss"
    )  # an L1 penalty added to the TopK loss


def test_dead_latent_fraction_axes_swapped():
    assert_fails(checks.test_dead_latent_fraction, lambda a: (a.sum(-1) == 0).float().mean(0), "axes_swapped")


def _auxk_topk_then_mask(pre, residual, dead, W_dec_normalized, k_aux):
    top = pre.topk(k_aux, dim=-1)
    vals = top.values * dead.expand_as(pre).gather(-1, top.indices).to(pre.dtype)
    acts = torch.zeros_like(pre).scatter(-1, top.indices, vals)
    return (residual - einops.einsum(acts, W_dec_normalized, "b i s, i s d -> b i d")).pow(2).mean(-1)


def test_auxk_topk_before_mask():
    assert_fails(checks.test_auxk_loss, _auxk_topk_then_mask, "topk_before_mask")


def test_fve_pooled_variance():
    def fve(h, r):
        return 1 - (h - r).pow(2).sum((0, 2)) / (h - h.mean(0, keepdim=True)).pow(2).sum()

    assert_fails(checks.test_fraction_variance_explained, fve, "pooled_variance")


# fourth fresh measurement: a hard-coded bandwidth (the gradient is identical at two ε, and 0 on the test inputs:
# not "None or zeros"), a window far narrower than ε, ReLU(gate) for the gate, a ratio off by a size, integers
def _step_backward(kind, width=0.5, bw_fixed=None):
    class Fn(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, th, bw):
            ctx.save_for_backward(x, th)
            ctx.bw = bw
            on = (x > th).to(x.dtype)
            return on if kind == "heaviside" else x * on

        @staticmethod
        def backward(ctx, g):
            x, th = ctx.saved_tensors
            bw = ctx.bw if bw_fixed is None else bw_fixed
            k = (((x - th) / bw).abs() < width).to(x.dtype) / bw * g
            gx = torch.zeros_like(x) if kind == "heaviside" else (x > th).to(x.dtype) * g
            return gx, -k * (1.0 if kind == "heaviside" else th), None

    return Fn


def test_hard_coded_bandwidth():
    for check, kind in ((checks.test_heaviside, "heaviside"), (checks.test_jumprelu, "jumprelu")):
        err = assert_fails(check, _step_backward(kind, bw_fixed=1e-3), "bandwidth_ignored")
        assert "None or zeros" not in err.hint
        assert_fails(check, _step_backward(kind, bw_fixed=0.5), "bandwidth_ignored")  # non-zero outside too
        assert_fails(check, _step_backward(kind, width=1e-3), "window_too_narrow")


# ReLU(gate) times the magnitude, instead of the gate's indicator
_gated_relu_gate = _gated_forward(lambda proj, gate, sae: F.relu(gate) * F.relu(proj * sae.r_mag.exp() + sae.b_mag))


def test_gated_relu_gate():
    cls = type("G", (A.GatedToySAE,), {"forward": _gated_relu_gate})
    assert_fails(checks.test_gated_forward, cls, "relu_gate_times_mag")


def test_fve_ratio_size_factor():
    def fve(h, r):
        return 1 - (h - r).pow(2).mean((0, 2)) / (h - h.mean(0, keepdim=True)).pow(2).sum((0, 2))

    assert_fails(checks.test_fraction_variance_explained, fve, "ratio_size_factor")


def test_integer_fractions():
    assert_fails(checks.test_dead_latent_fraction, lambda a: (a == 0).all(0).sum(-1) // a.shape[-1], "integer_result")
    assert_fails(checks.test_l0_norm, lambda a: (a != 0).sum((0, 2)) // a.shape[0], "integer_result")


def _cos(Wf, Wd):
    return torch.einsum("isd,idf->isf", Wd / Wd.norm(dim=-1, keepdim=True), Wf / Wf.norm(dim=1, keepdim=True))


def test_metrics_fresh5():
    fve = checks.test_fraction_variance_explained
    assert_fails(checks.test_l0_norm, lambda a: (a > 0).float().sum(-1).median(0).values, "median")
    c = lambda h: (h - h.mean(0, keepdim=True)).pow(2)
    assert_fails(
        fve,
        lambda h, r: 1 - (h - r).pow(2).sum((0, 2)) / (r - h.mean(0)).pow(2).sum((0, 2)),
        "variance_of_reconstruction",
    )
    assert_fails(fve, lambda h, r: 1 - (h - r).pow(2).sum((0, 1)) / c(h).sum((0, 1)), "wrong_axes")
    pooled = lambda a: (a == 0).all(0).all(0).float().mean().expand(a.shape[1])
    assert_fails(checks.test_dead_latent_fraction, pooled, "pooled_instances")
    soft = lambda Wf, Wd: (_cos(Wf, Wd).softmax(1) * _cos(Wf, Wd)).sum(1)
    assert_fails(checks.test_feature_recovery, soft, "softmax_weighted")
    assert_fails(checks.test_feature_recovery, lambda Wf, Wd: _cos(Wf, Wd).amax(1).arccos(), "angle")


def _auxk_detached_decoder(pre, residual, dead, W_dec_normalized, k_aux):
    top = torch.where(dead, pre, -torch.inf).topk(k_aux, dim=-1)
    values = torch.where(top.values.isfinite(), top.values, torch.zeros_like(top.values))
    acts = torch.zeros_like(pre).scatter(-1, top.indices, values)
    return (residual - torch.einsum("bis,isd->bid", acts, W_dec_normalized.detach())).pow(2).mean(-1)


def test_auxk_decoder_detached():
    assert_fails(checks.test_auxk_loss, _auxk_detached_decoder, "decoder_detached")


# fresh7: the gated biases swapped, a smooth forward step, exp(θ) in JumpReLU's θ-gradient, the config's initial
# threshold in the JumpReLU SAE, a normalised / live-filled AuxK loss, a pooled FVE numerator, feature recovery
# without epsilon or picked by the raw dot product
_gated_biases_swapped = _gated_forward(
    lambda proj, gate, sae: ((proj + sae.b_mag) > 0).to(proj.dtype) * F.relu(proj * sae.r_mag.exp() + sae.b_enc)
)


class _SmoothHeaviside(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, th, bw):
        ctx.save_for_backward(x, th)
        ctx.bw = bw
        return torch.sigmoid((x - th) / bw)

    @staticmethod
    def backward(ctx, g):
        x, th = ctx.saved_tensors
        return torch.zeros_like(x), -(((x - th) / ctx.bw).abs() < 0.5).to(x.dtype) / ctx.bw * g, None


class _JumpExpTheta(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, th, bw):
        ctx.save_for_backward(x, th)
        ctx.bw = bw
        return x * (x > th).to(x.dtype)

    @staticmethod
    def backward(ctx, g):
        x, th = ctx.saved_tensors
        k = (((x - th) / ctx.bw).abs() < 0.5).to(x.dtype) / ctx.bw
        return (x > th).to(x.dtype) * g, -th.exp() * k * g, None


def _jumprelu_config_threshold(self, h):
    pre = einops.einsum(h - self.b_dec, self.W_enc, "b i d, i d s -> b i s") + self.b_enc
    theta = torch.full_like(pre, self.cfg.jumprelu_init_threshold)
    acts = A.JumpReLU.apply(pre, theta, self.cfg.jumprelu_bandwidth)
    h_rec = einops.einsum(acts, self.W_dec_normalized, "b i s, i s d -> b i d") + self.b_dec
    L_sp = A.Heaviside.apply(pre, theta, self.cfg.jumprelu_bandwidth).sum(-1)
    d = {"L_reconstruction": (h_rec - h).pow(2).mean(-1), "L_sparsity": L_sp}
    return d, (d["L_reconstruction"] + self.sparsity_coeff * L_sp).mean(0).sum(), acts, h_rec


def _auxk(bug):
    def auxk(pre, residual, dead, W_dec_normalized, k_aux):
        top = torch.where(dead, pre, -torch.inf).topk(k_aux, dim=-1)
        vals = pre.gather(-1, top.indices) if bug == "live_fill" else torch.where(top.values.isfinite(), top.values, 0)
        acts = torch.zeros_like(pre).scatter(-1, top.indices, vals)
        out = (residual - einops.einsum(acts, W_dec_normalized, "b i s, i s d -> b i d")).pow(2).mean(-1)
        return out / residual.pow(2).mean(-1) if bug == "normalised" else out

    return auxk


def test_fresh7_mistakes_are_named():
    cls = type("G", (A.GatedToySAE,), {"forward": _gated_biases_swapped})
    assert_fails(checks.test_gated_forward, cls, "gate_bias_b_mag+mag_bias_b_enc")
    assert_fails(checks.test_heaviside, _SmoothHeaviside, "forward_not_step")
    assert_fails(checks.test_jumprelu, _JumpExpTheta, "exp_theta_factor")
    cls = type("J", (A.JumpReLUToySAE,), {"forward": _jumprelu_config_threshold})
    assert_fails(checks.test_jumprelu_forward, cls, "threshold_from_config")
    assert_fails(checks.test_auxk_loss, _auxk("normalised"), "normalised_by_residual_mean_square")
    assert_fails(checks.test_auxk_loss, _auxk("live_fill"), "live_fill")
    fve = lambda h, r: 1 - F.mse_loss(r, h) / (h - h.mean(0)).pow(2).mean((0, 2))
    assert_fails(checks.test_fraction_variance_explained, fve, "pooled_over_instances")


def _recovery(bug):
    def recovery(Wf, Wd):
        eps = 0.0 if bug == "no_eps" else 1e-8
        f_hat, d_hat = Wf / (Wf.norm(dim=1, keepdim=True) + eps), Wd / (Wd.norm(dim=-1, keepdim=True) + eps)
        cos = einops.einsum(d_hat, f_hat, "i s d, i d f -> i s f")
        if bug == "raw_pick":
            best = einops.einsum(Wd, Wf, "i s d, i d f -> i s f").argmax(1, keepdim=True)
            return cos.gather(1, best)[:, 0]
        return cos.amax(1)

    return recovery


def test_recovery_fresh7():
    assert_fails(checks.test_feature_recovery, _recovery("no_eps"), "nan_zero_norm")
    assert_fails(checks.test_feature_recovery, _recovery("raw_pick"), "picked_by_dot_product")
    assert_passes(checks.test_feature_recovery, _recovery(None))
