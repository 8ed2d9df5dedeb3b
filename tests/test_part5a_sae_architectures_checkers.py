"""Proofs for part 5a's architecture checkers (Gated, Heaviside and JumpReLU, the JumpReLU SAE, TopK): the
reference and correct variants written differently pass, realistic mistakes fail with their own code.

Variants subclass the reference classes and override only the method under test (the checkers graft exactly that
method onto the reference). AuxK and the metrics are proven in test_part5a_sae_architectures_metrics_checkers.py.
"""

from __future__ import annotations

import einops
import pytest
import torch
import torch.nn.functional as F

import solutions.part5a_sae_architectures as A
import tests.part5a_sae_architectures as checks
from tests.proving import assert_fails, assert_not_done, assert_passes, stub


def _with(base: type, **methods) -> type:
    return type(f"Variant{base.__name__}", (base,), methods)


# --------------------------------------------------------------------------------------------
# Gated
# --------------------------------------------------------------------------------------------
def _gated(**bug):
    def forward(self, h):
        x = h if bug.get("no_sub") else h - self.b_dec
        proj = torch.einsum("bid,ids->bis", x, self.W_enc)
        gate_pre = proj + (0 if bug.get("no_b_gate") else self.b_enc)
        r = self.r_mag if bug.get("no_exp") else torch.exp(self.r_mag)
        r = 1.0 if bug.get("no_r") else r
        b_mag = {"none": 0.0, "b_enc": self.b_enc}.get(bug.get("b_mag"), self.b_mag)
        mag = (proj + b_mag) * r if bug.get("exp_after_bias") else proj * r + b_mag
        gate_on = (gate_pre > 0).float()
        acts = {
            "gate": F.relu(gate_pre),
            "no_gate": F.relu(mag),
            "no_relu": gate_on * mag,
            "swapped": F.relu(gate_pre) * (mag > 0).float(),
        }.get(bug.get("acts"), gate_on * F.relu(mag))
        W = self.W_dec if bug.get("raw_dec") else self.W_dec_normalized
        h_rec = torch.einsum("bis,isd->bid", acts, W) + (0 if bug.get("no_add") else self.b_dec)
        W_aux = self.W_dec if bug.get("aux_raw") else self.W_dec_normalized
        b_aux = self.b_dec
        if not bug.get("aux_attached"):
            W_aux = W_aux.detach()
            b_aux = b_aux if bug.get("aux_b_attached") else b_aux.detach()
        aux_in = {
            "acts": acts,
            "indicator": gate_on,
            "pre": gate_pre,
            "detached": F.relu(gate_pre).detach(),
        }.get(bug.get("aux_in"), F.relu(gate_pre))
        via_gate = torch.einsum("bis,isd->bid", aux_in, W_aux) + (0 if bug.get("aux_no_b") else b_aux)
        sp_in = F.relu(gate_pre).detach() if bug.get("sp_detached") else F.relu(gate_pre)
        L_sp = {
            "acts": acts.sum(-1),
            "abs": gate_pre.abs().sum(-1),
            "mag": F.relu(mag).sum(-1),
        }.get(bug.get("sp"), sp_in.sum(-1))
        aux_sq = (via_gate - h).pow(2)
        d = {
            "L_reconstruction": (h_rec - h).pow(2).mean(-1),
            "L_sparsity": L_sp,
            "L_aux": aux_sq.sum(-1) if bug.get("aux_sum") else aux_sq.mean(-1),
        }
        c = self.sparsity_coeff
        if bug.get("coeff_sp"):
            d["L_sparsity"], c = c * d["L_sparsity"], 1.0
        if bug.get("aux_mean"):
            return d, (d["L_reconstruction"] + c * d["L_sparsity"]).mean(0).sum() + d["L_aux"].mean(), acts, h_rec
        per = {
            "no_aux": d["L_reconstruction"] + c * d["L_sparsity"],
            "coeff_aux": d["L_reconstruction"] + c * (d["L_sparsity"] + d["L_aux"]),
        }.get(bug.get("terms"), d["L_reconstruction"] + c * d["L_sparsity"] + d["L_aux"])
        return d, per.mean(0).sum(), acts, h_rec

    return forward


def _gated_heaviside(self, h):
    """torch.heaviside for the gate: right values, but it has no derivative, so backward fails."""
    d, loss, acts, h_rec = _gated_einops(self, h)
    x = h - self.b_dec
    gate_pre = torch.einsum("bid,ids->bis", x, self.W_enc) + self.b_enc
    return d, loss + 0.0 * torch.heaviside(gate_pre, torch.zeros_like(gate_pre)).sum(), acts, h_rec


def _gated_loop(self, h):
    """Correct, per instance with matmuls and torch.where."""
    out = {"L_reconstruction": [], "L_sparsity": [], "L_aux": []}
    acts_all, rec_all = [], []
    W_hat = self.W_dec_normalized
    for k in range(h.shape[1]):
        x = h[:, k] - self.b_dec[k]
        gate = x @ self.W_enc[k] + self.b_enc[k]
        mag = x @ (self.W_enc[k] * torch.exp(self.r_mag[k])) + self.b_mag[k]
        acts = torch.where(gate > 0, F.relu(mag), torch.zeros_like(mag))
        rec = acts @ W_hat[k] + self.b_dec[k]
        aux_rec = F.relu(gate) @ W_hat[k].detach() + self.b_dec[k].detach()
        out["L_reconstruction"].append(F.mse_loss(rec, h[:, k], reduction="none").mean(-1))
        out["L_sparsity"].append(F.relu(gate).norm(p=1, dim=-1))
        out["L_aux"].append(F.mse_loss(aux_rec, h[:, k], reduction="none").mean(-1))
        acts_all.append(acts)
        rec_all.append(rec)
    d = {key: torch.stack(v, 1) for key, v in out.items()}
    loss = ((d["L_reconstruction"] + self.sparsity_coeff * d["L_sparsity"] + d["L_aux"]).sum(0) / h.shape[0]).sum()
    return d, loss, torch.stack(acts_all, 1), torch.stack(rec_all, 1)


def _gated_einops(self, h):
    """Correct: einops, the magnitude weights built first, the gate applied with torch.where."""
    x = h - self.b_dec
    gate_pre = einops.einsum(x, self.W_enc, "b i d, i d s -> b i s") + self.b_enc
    W_mag = self.W_enc * self.r_mag.exp()[:, None, :]
    mag_pre = einops.einsum(x, W_mag, "b i d, i d s -> b i s") + self.b_mag
    acts = torch.where(gate_pre > 0, mag_pre.clamp_min(0), 0.0)
    W = self.W_dec_normalized
    h_rec = einops.einsum(acts, W, "b i s, i s d -> b i d") + self.b_dec
    via_gate = einops.einsum(gate_pre.clamp_min(0), W.detach(), "b i s, i s d -> b i d") + self.b_dec.detach()
    d = {
        "L_reconstruction": ((h - h_rec) ** 2).mean(-1),
        "L_sparsity": gate_pre.clamp_min(0).sum(-1),
        "L_aux": ((h - via_gate) ** 2).mean(-1),
    }
    total = d["L_reconstruction"] + self.sparsity_coeff * d["L_sparsity"] + d["L_aux"]
    return d, einops.reduce(total, "b i -> i", "mean").sum(), acts, h_rec


GATED_BUGS = {
    "no_b_dec_subtraction": _gated(no_sub=True),
    "gate_as_acts": _gated(acts="gate"),
    "no_gate": _gated(acts="no_gate"),
    "mag_no_relu": _gated(acts="no_relu"),
    "swapped_paths": _gated(acts="swapped"),
    "r_mag_no_exp": _gated(no_exp=True),
    "r_mag_after_bias": _gated(exp_after_bias=True),
    "no_b_mag": _gated(b_mag="none"),
    "mag_bias_b_enc": _gated(b_mag="b_enc"),
    "no_b_gate": _gated(no_b_gate=True),
    "unnormalized_decoder": _gated(raw_dec=True),
    "no_b_dec_add": _gated(no_add=True),
    "sparsity_on_acts": _gated(sp="acts"),
    "sparsity_abs_gate": _gated(sp="abs"),
    "sparsity_on_mag": _gated(sp="mag"),
    "aux_is_rec": _gated(aux_in="acts"),
    "aux_indicator": _gated(aux_in="indicator"),
    "aux_no_relu": _gated(aux_in="pre"),
    "aux_no_b_dec": _gated(aux_no_b=True),
    "aux_unnormalized": _gated(aux_raw=True),
    "aux_sum": _gated(aux_sum=True),
    "no_aux_in_loss": _gated(terms="no_aux"),
    "coeff_on_aux": _gated(terms="coeff_aux"),
    "aux_not_detached": _gated(aux_attached=True),
    "aux_b_dec_not_detached": _gated(aux_b_attached=True),
    "aux_gate_detached": _gated(aux_in="detached"),
    "sparsity_detached": _gated(sp_detached=True),
    "no_derivative": _gated_heaviside,
    "no_r_mag": _gated(no_r=True),
    "coeff_in_L_sparsity": _gated(coeff_sp=True),
    "aux_mean_inst": _gated(aux_mean=True),
}


@pytest.mark.parametrize("fn", [_gated(), _gated_loop, _gated_einops])
def test_gated_variants(fn):
    assert_passes(checks.test_gated_forward, A.GatedToySAE)
    assert_passes(checks.test_gated_forward, _with(A.GatedToySAE, forward=fn))


@pytest.mark.parametrize("code", list(GATED_BUGS))
def test_gated_bugs(code):
    assert_fails(checks.test_gated_forward, _with(A.GatedToySAE, forward=GATED_BUGS[code]), code)


def test_gated_stub():
    assert_not_done(checks.test_gated_forward, _with(A.GatedToySAE, forward=stub))


# --------------------------------------------------------------------------------------------
# Heaviside and JumpReLU autograd functions
# --------------------------------------------------------------------------------------------
def _step_fn(kind, **bug):
    class Fn(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, threshold, bandwidth):
            ctx.save_for_backward(x, threshold)
            ctx.bandwidth = bandwidth
            on = (x >= threshold) if bug.get("ge") else (x > threshold)
            mode = bug.get("fwd")
            if mode == "zero":
                on = x > 0
            elif mode == "inverted":
                on = x < threshold
            elif mode == "rect":
                return (((x - threshold) / bandwidth).abs() < 0.5).to(x.dtype)
            if bug.get("bool"):
                return on
            out = on.to(x.dtype)
            if mode == "shifted":
                return (x - threshold) * out
            if (kind == "heaviside") != (mode == "other_kind"):
                return out
            return x * out

        @staticmethod
        def backward(ctx, g):
            x, th = ctx.saved_tensors
            bw = ctx.bandwidth
            u = {"unscaled": x - th, "centre0": x / bw}.get(bug.get("u"), (x - th) / bw)
            k = (u.abs() < bug.get("rect", 0.5)).to(x.dtype) * bug.get("k_scale", 1.0)
            if bug.get("gauss"):
                k = torch.exp(-0.5 * u**2)
            factor = {"theta": th, "one": 1.0, "x": x}[bug.get("factor", "theta")] if kind == "jumprelu" else 1.0
            scale = {"divide": 1 / bw, "none": 1.0, "multiply": bw}[bug.get("bw", "divide")]
            gth = bug.get("sign", -1.0) * factor * k * scale
            if kind == "heaviside":
                gx = {"right": None, "ones": torch.ones_like(x), "rect": k / bw}[bug.get("gx", "right")]
            else:
                gx = {
                    "right": (x > th).to(x.dtype),
                    "ones": torch.ones_like(x),
                    "relu": (x > 0).to(x.dtype),
                    "with_rect": (x > th).to(x.dtype) + x * k / bw,
                    "missing": None,
                    "with_theta_rect": (x > th).to(x.dtype) + th * k / bw,
                }[bug.get("gx", "right")]
            if not bug.get("no_g"):
                gth = gth * g
                gx = gx * g if gx is not None else None
            if bug.get("no_th_grad"):
                gth = None
            if bug.get("swap"):
                return gth, gx, None
            if bug.get("two"):
                return gx, gth
            return gx, gth, None

    return Fn


HEAVISIDE_BUGS = {
    "forward_no_threshold": _step_fn("heaviside", fwd="zero"),
    "forward_inverted": _step_fn("heaviside", fwd="inverted"),
    "forward_is_jumprelu": _step_fn("heaviside", fwd="other_kind"),
    "forward_rect": _step_fn("heaviside", fwd="rect"),
    "grad_x_passthrough": _step_fn("heaviside", gx="ones"),
    "grad_x_rect": _step_fn("heaviside", gx="rect"),
    "grads_swapped": _step_fn("heaviside", swap=True),
    "grad_sign": _step_fn("heaviside", sign=1.0),
    "no_bandwidth": _step_fn("heaviside", bw="none"),
    "bw_multiplied": _step_fn("heaviside", bw="multiply"),
    "rect_width": _step_fn("heaviside", rect=1.0),
    "rect_unscaled": _step_fn("heaviside", u="unscaled"),
    "rect_not_centered": _step_fn("heaviside", u="centre0"),
    "no_threshold_grad": _step_fn("heaviside", no_th_grad=True),
    "no_grad_output": _step_fn("heaviside", no_g=True),
    "grad_count": _step_fn("heaviside", two=True),
    "bool_output": _step_fn("heaviside", bool=True),
    "kernel_shape": _step_fn("heaviside", gauss=True),
    "rect_halved": _step_fn("heaviside", k_scale=0.5),
}
JUMPRELU_BUGS = {
    "forward_relu": _step_fn("jumprelu", fwd="zero"),
    "forward_shifted": _step_fn("jumprelu", fwd="shifted"),
    "forward_is_heaviside": _step_fn("jumprelu", fwd="other_kind"),
    "forward_inverted": _step_fn("jumprelu", fwd="inverted"),
    "grad_x_ones": _step_fn("jumprelu", gx="ones"),
    "grad_x_relu": _step_fn("jumprelu", gx="relu"),
    "grad_x_includes_rect": _step_fn("jumprelu", gx="with_rect"),
    "grad_x_missing": _step_fn("jumprelu", gx="missing"),
    "grads_swapped": _step_fn("jumprelu", swap=True),
    "no_theta_factor": _step_fn("jumprelu", factor="one"),
    "x_factor": _step_fn("jumprelu", factor="x"),
    "grad_sign": _step_fn("jumprelu", sign=1.0),
    "no_bandwidth": _step_fn("jumprelu", bw="none"),
    "bw_multiplied": _step_fn("jumprelu", bw="multiply"),
    "rect_width": _step_fn("jumprelu", rect=1.0),
    "rect_unscaled": _step_fn("jumprelu", u="unscaled"),
    "rect_not_centered": _step_fn("jumprelu", u="centre0"),
    "no_threshold_grad": _step_fn("jumprelu", no_th_grad=True),
    "no_grad_output": _step_fn("jumprelu", no_g=True),
    "grad_count": _step_fn("jumprelu", two=True),
    "kernel_shape": _step_fn("jumprelu", gauss=True),
    "rect_halved": _step_fn("jumprelu", k_scale=0.5),
}


def test_jumprelu_grad_x_with_theta_term():
    assert_fails(checks.test_jumprelu, _step_fn("jumprelu", gx="with_theta_rect"), "grad_x_includes_rect")


class _HeavisideZeros(torch.autograd.Function):
    """Correct: explicit zero x-gradient, rectangle via logical ops, threshold gradient via where."""

    @staticmethod
    def forward(ctx, x, threshold, bandwidth):
        ctx.save_for_backward(x, threshold)
        ctx.bw = bandwidth
        return torch.where(x > threshold, torch.ones_like(x), torch.zeros_like(x))

    @staticmethod
    def backward(ctx, g):
        x, th = ctx.saved_tensors
        inside = ((x - th) > -ctx.bw / 2) & ((x - th) < ctx.bw / 2)
        return torch.zeros_like(x), torch.where(inside, -g / ctx.bw, torch.zeros_like(g)), None


class _JumpReLUWhere(torch.autograd.Function):
    """Correct: torch.where throughout."""

    @staticmethod
    def forward(ctx, x, threshold, bandwidth):
        ctx.save_for_backward(x, threshold)
        ctx.bw = bandwidth
        return torch.where(x > threshold, x, torch.zeros_like(x))

    @staticmethod
    def backward(ctx, g):
        x, th = ctx.saved_tensors
        inside = ((x - th) / ctx.bw).abs() < 0.5
        return torch.where(x > th, g, 0.0), torch.where(inside, -th * g / ctx.bw, 0.0), None


@pytest.mark.parametrize("impl", [A.Heaviside, _step_fn("heaviside"), _HeavisideZeros])
def test_heaviside_variants(impl):
    assert_passes(checks.test_heaviside, impl)


@pytest.mark.parametrize("code", list(HEAVISIDE_BUGS))
def test_heaviside_bugs(code):
    assert_fails(checks.test_heaviside, HEAVISIDE_BUGS[code], code)


@pytest.mark.parametrize("impl", [A.JumpReLU, _step_fn("jumprelu"), _JumpReLUWhere])
def test_jumprelu_variants(impl):
    assert_passes(checks.test_jumprelu, impl)


@pytest.mark.parametrize("code", list(JUMPRELU_BUGS))
def test_jumprelu_bugs(code):
    assert_fails(checks.test_jumprelu, JUMPRELU_BUGS[code], code)


def test_step_function_stubs_and_wrong_objects():
    class Stub(torch.autograd.Function):
        forward = staticmethod(stub)
        backward = staticmethod(stub)

    assert_not_done(checks.test_heaviside, Stub)
    assert_not_done(checks.test_jumprelu, Stub)
    assert_fails(checks.test_heaviside, lambda x, t, b: x, "not_a_class")
    assert_fails(checks.test_jumprelu, type("NotAFunction", (), {}), "not_function")


# --------------------------------------------------------------------------------------------
# JumpReLU SAE
# --------------------------------------------------------------------------------------------
def _jump(**bug):
    def forward(self, h):
        x = h if bug.get("no_sub") else h - self.b_dec
        pre = torch.einsum("bid,ids->bis", x, self.W_enc) + (0 if bug.get("no_b_enc") else self.b_enc)
        th = self.log_threshold if bug.get("no_exp") else self.log_threshold.exp()
        th = th.detach() if bug.get("th_detached") else th
        th = th if bug.get("no_expand") else th.expand_as(pre)
        bw = self.cfg.jumprelu_init_threshold if bug.get("wrong_bw") else self.cfg.jumprelu_bandwidth
        acts = {
            "relu": F.relu(pre),
            "indicator": A.Heaviside.apply(pre, th, bw),
            "via_heaviside": pre * A.Heaviside.apply(pre, th, bw),
        }.get(bug.get("acts"), A.JumpReLU.apply(pre, th, bw))
        W = self.W_dec if bug.get("raw_dec") else self.W_dec_normalized
        h_rec = torch.einsum("bis,isd->bid", acts, W) + (0 if bug.get("no_add") else self.b_dec)
        L_sp = {
            "l1": lambda: acts.sum(-1),
            "count": lambda: (acts > 0).float().sum(-1),
            "mean": lambda: A.Heaviside.apply(pre, th, bw).mean(-1),
            "of_acts": lambda: A.Heaviside.apply(acts, th, bw).sum(-1),
            "log_th": lambda: A.Heaviside.apply(pre, self.log_threshold.expand_as(pre), bw).sum(-1),
        }.get(bug.get("sparsity"), lambda: A.Heaviside.apply(pre, th, bw).sum(-1))()
        err = (h_rec - h).pow(2)
        d = {"L_reconstruction": err.sum(-1) if bug.get("rec_sum") else err.mean(-1), "L_sparsity": L_sp}
        c = 1.0 if bug.get("no_coeff") else self.sparsity_coeff
        if bug.get("coeff_sp"):
            d["L_sparsity"] = L_sp = c * L_sp
            c = 1.0
        if bug.get("sp_batch_sum"):
            return d, d["L_reconstruction"].mean(0).sum() + (c * L_sp).sum(), acts, h_rec
        per = d["L_reconstruction"] + c * L_sp
        return d, per.mean() if bug.get("mean_all") else per.mean(0).sum(), acts, h_rec

    return forward


def _jump_loop(self, h):
    """Correct: instance by instance, the threshold repeated over the batch with repeat."""
    acts_all, recs, l0s = [], [], []
    bw = self.cfg.jumprelu_bandwidth
    for k in range(h.shape[1]):
        pre = (h[:, k] - self.b_dec[k]) @ self.W_enc[k] + self.b_enc[k]
        th = self.log_threshold[k].exp().repeat(h.shape[0], 1)
        a = A.JumpReLU.apply(pre, th, bw)
        acts_all.append(a)
        recs.append(a @ self.W_dec_normalized[k] + self.b_dec[k])
        l0s.append(A.Heaviside.apply(pre, th, bw).sum(-1))
    acts, h_rec, l0 = torch.stack(acts_all, 1), torch.stack(recs, 1), torch.stack(l0s, 1)
    l_rec = ((h_rec - h) ** 2).mean(-1)
    loss = sum((l_rec[:, k] + self.sparsity_coeff[k] * l0[:, k]).mean() for k in range(h.shape[1]))
    return {"L_reconstruction": l_rec, "L_sparsity": l0}, loss, acts, h_rec


JUMP_BUGS = {
    "no_b_dec_subtraction": _jump(no_sub=True),
    "no_exp": _jump(no_exp=True),
    "plain_relu": _jump(acts="relu"),
    "acts_are_indicator": _jump(acts="indicator"),
    "no_b_enc": _jump(no_b_enc=True),
    "unnormalized_decoder": _jump(raw_dec=True),
    "no_b_dec_add": _jump(no_add=True),
    "rec_sum": _jump(rec_sum=True),
    "sparsity_l1": _jump(sparsity="l1"),
    "sparsity_mean": _jump(sparsity="mean"),
    "no_coeff": _jump(no_coeff=True),
    "loss_mean_inst": _jump(mean_all=True),
    "threshold_grad": _jump(sparsity="count"),
    "l0_of_acts": _jump(sparsity="of_acts"),
    "wrong_bandwidth": _jump(wrong_bw=True),
    "threshold_detached": _jump(th_detached=True),
    "acts_via_heaviside": _jump(acts="via_heaviside"),
    "coeff_in_L_sparsity": _jump(coeff_sp=True),
    "sparsity_batch_sum": _jump(sp_batch_sum=True),
    "sparsity_threshold_mismatch": _jump(sparsity="log_th"),
}


# ReLU(pre) fed to JumpReLU/Heaviside is wrong for θ < ε/2 (proved in heldout22)
@pytest.mark.parametrize("fn", [_jump(), _jump_loop, _jump(no_expand=True)])
def test_jumprelu_forward_variants(fn):
    assert_passes(checks.test_jumprelu_forward, A.JumpReLUToySAE)
    assert_passes(checks.test_jumprelu_forward, _with(A.JumpReLUToySAE, forward=fn))


@pytest.mark.parametrize("code", list(JUMP_BUGS))
def test_jumprelu_forward_bugs(code):
    assert_fails(checks.test_jumprelu_forward, _with(A.JumpReLUToySAE, forward=JUMP_BUGS[code]), code)


def test_jumprelu_forward_stub():
    assert_not_done(checks.test_jumprelu_forward, _with(A.JumpReLUToySAE, forward=stub))


# --------------------------------------------------------------------------------------------
# TopK SAE
# --------------------------------------------------------------------------------------------
def _topk(**bug):
    def forward(self, h):
        pre = torch.einsum("bid,ids->bis", h - self.b_dec, self.W_enc) + self.b_enc
        post = pre if bug.get("no_relu") else F.relu(pre)
        k = 0 if bug.get("k_zero") else self.cfg.k + bug.get("k_offset", 0)
        dim = bug.get("dim", -1)
        score = pre.abs() if bug.get("by_abs") else post
        values_from = pre if bug.get("by_abs") else post
        idx = score.topk(k, dim=dim, largest=not bug.get("smallest")).indices
        kept = values_from.gather(dim, idx)
        if bug.get("ones"):
            kept = torch.ones_like(kept)
        if bug.get("gather_pre"):
            kept = pre.gather(dim, idx)
        if bug.get("detach"):
            kept = kept.detach()
        acts = torch.zeros_like(pre).scatter(dim, idx, kept)
        if bug.get("no_topk"):
            acts = post
        if bug.get("unscattered"):
            acts = kept
            h_rec = h
        else:
            h_rec = torch.einsum("bis,isd->bid", acts, self.W_dec_normalized) + self.b_dec
        l_sp = acts.sum(-1) if bug.get("sp_l1") else (acts != 0).float().sum(-1)
        d = {"L_reconstruction": (h_rec - h).pow(2).mean(-1), "L_sparsity": l_sp}
        per = d["L_reconstruction"] + (self.sparsity_coeff * l_sp if bug.get("penalty") else 0)
        return d, per.mean(0).sum(), acts, h_rec

    return forward


def _topk_across(self, h):
    pre = F.relu(torch.einsum("bid,ids->bis", h - self.b_dec, self.W_enc) + self.b_enc)
    flat = pre.flatten(1)
    top = flat.topk(self.cfg.k, dim=-1)
    acts = torch.zeros_like(flat).scatter(-1, top.indices, top.values).view_as(pre)
    h_rec = torch.einsum("bis,isd->bid", acts, self.W_dec_normalized) + self.b_dec
    l_rec = (h_rec - h).pow(2).mean(-1)
    return {"L_reconstruction": l_rec}, l_rec.mean(0).sum(), acts, h_rec


def _topk_mask(self, h):
    """Correct: a mask from the k-th largest value (no ties in continuous data)."""
    pre = F.relu(einops.einsum(h - self.b_dec, self.W_enc, "b i d, i d s -> b i s") + self.b_enc)
    kth = pre.topk(self.cfg.k, dim=-1).values[..., -1:]
    acts = pre * (pre >= kth)
    h_rec = einops.einsum(acts, self.W_dec_normalized, "b i s, i s d -> b i d") + self.b_dec
    l_rec = ((h_rec - h) ** 2).mean(-1)
    return {"L_reconstruction": l_rec, "L_sparsity": (acts > 0).sum(-1).float()}, l_rec.mean(0).sum(), acts, h_rec


def _topk_sort(self, h):
    """Correct: argsort, then zero everything after the k-th position; the ReLU after the top-k."""
    pre = torch.einsum("bid,ids->bis", h - self.b_dec, self.W_enc) + self.b_enc
    order = pre.argsort(dim=-1, descending=True)
    keep = torch.zeros_like(pre, dtype=torch.bool).scatter(-1, order[..., : self.cfg.k], True)
    acts = torch.where(keep, pre, 0.0).clamp_min(0)
    h_rec = torch.einsum("bis,isd->bid", acts, self.W_dec_normalized) + self.b_dec
    l_rec = F.mse_loss(h_rec, h, reduction="none").mean(-1)
    return {"L_reconstruction": l_rec}, l_rec.mean(0).sum(), acts, h_rec


def _topk_kthvalue(self, h):
    """kthvalue(k) is the k-th smallest: keeps d_sae - k + 1 latents."""
    pre = torch.einsum("bid,ids->bis", h - self.b_dec, self.W_enc) + self.b_enc
    acts = F.relu(pre) * (pre >= pre.kthvalue(self.cfg.k, dim=-1, keepdim=True).values)
    h_rec = torch.einsum("bis,isd->bid", acts, self.W_dec_normalized) + self.b_dec
    l_rec = (h_rec - h).pow(2).mean(-1)
    return {"L_reconstruction": l_rec}, l_rec.mean(0).sum(), acts, h_rec


TOPK_BUGS = {
    "no_relu": _topk(no_relu=True),
    "too_many": _topk(k_offset=1),
    "too_few": _topk(k_offset=-1),
    "by_abs": _topk(by_abs=True),
    "smallest": _topk(smallest=True),
    "no_topk": _topk(no_topk=True),
    "topk_batch_axis": _topk(dim=0),
    "topk_across_instances": _topk_across,
    "mask_not_values": _topk(ones=True),
    "acts_detached": _topk(detach=True),
    "sparsity_in_loss": _topk(penalty=True),
    "values_not_scattered": _topk(unscattered=True),
    "sparsity_l1": _topk(sp_l1=True),
    "all_zero": _topk(k_zero=True),
    "negative_acts": _topk(gather_pre=True),
    "kthvalue_smallest": _topk_kthvalue,
}


@pytest.mark.parametrize("fn", [_topk(), _topk_mask, _topk_sort])
def test_topk_variants(fn):
    assert_passes(checks.test_topk_forward, A.TopKToySAE)
    assert_passes(checks.test_topk_forward, _with(A.TopKToySAE, forward=fn))


@pytest.mark.parametrize("code", list(TOPK_BUGS))
def test_topk_bugs(code):
    assert_fails(checks.test_topk_forward, _with(A.TopKToySAE, forward=TOPK_BUGS[code]), code)


def test_topk_stub():
    assert_not_done(checks.test_topk_forward, _with(A.TopKToySAE, forward=stub))
