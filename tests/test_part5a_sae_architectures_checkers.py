"""Proofs for the part 5a checkers: the reference and correct variants pass, realistic mistakes fail right.

Variants subclass the reference classes and override only the method under test (the checkers graft
exactly that method onto the reference), or are plain functions for the function exercises.
"""

from __future__ import annotations

import einops
import pytest
import torch
import torch.nn.functional as F

import solutions.part5a_sae_architectures as A
import tests.part5a_sae_architectures as checks
from tests.proving import assert_fails, assert_not_done, assert_passes


def _stub(*args, **kwargs):
    raise NotImplementedError("not implemented yet")


def _with(base: type, **methods) -> type:
    return type(f"Variant{base.__name__}", (base,), methods)


# --------------------------------------------------------------------------------------------
# Gated
# --------------------------------------------------------------------------------------------
def _gated(exp=True, gate_acts=False, sparsity_on="gate", detach_aux=True, aux_in_loss=True, gate_mult=True):
    def forward(self, h):
        x = h - self.b_dec
        proj = torch.einsum("bid,ids->bis", x, self.W_enc)
        gate_pre = proj + self.b_enc
        mag = proj * (self.r_mag.exp() if exp else self.r_mag) + self.b_mag
        acts = F.relu(gate_pre) if gate_acts else F.relu(mag) * ((gate_pre > 0).float() if gate_mult else 1.0)
        W = self.W_dec_normalized
        h_rec = torch.einsum("bis,isd->bid", acts, W) + self.b_dec
        W_aux, b_aux = (W.detach(), self.b_dec.detach()) if detach_aux else (W, self.b_dec)
        via_gate = torch.einsum("bis,isd->bid", F.relu(gate_pre), W_aux) + b_aux
        d = {
            "L_reconstruction": (h_rec - h).pow(2).mean(-1),
            "L_sparsity": F.relu(gate_pre).sum(-1) if sparsity_on == "gate" else acts.sum(-1),
            "L_aux": (via_gate - h).pow(2).mean(-1),
        }
        per = d["L_reconstruction"] + self.sparsity_coeff * d["L_sparsity"] + (d["L_aux"] if aux_in_loss else 0)
        return d, per.mean(0).sum(), acts, h_rec

    return forward


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


GATED_BUGS = {
    "gate_as_acts": _gated(gate_acts=True),
    "r_mag_no_exp": _gated(exp=False),
    "no_gate": _gated(gate_mult=False),
    "sparsity_on_acts": _gated(sparsity_on="acts"),
    "aux_not_detached": _gated(detach_aux=False),
    "no_aux_in_loss": _gated(aux_in_loss=False),
}


@pytest.mark.parametrize("fn", [_gated(), _gated_loop])
def test_gated_variants(fn):
    assert_passes(checks.test_gated_forward, A.GatedToySAE)
    assert_passes(checks.test_gated_forward, _with(A.GatedToySAE, forward=fn))


@pytest.mark.parametrize("code", list(GATED_BUGS))
def test_gated_bugs(code):
    assert_fails(checks.test_gated_forward, _with(A.GatedToySAE, forward=GATED_BUGS[code]), code)


def test_gated_stub():
    assert_not_done(checks.test_gated_forward, _with(A.GatedToySAE, forward=_stub))


# --------------------------------------------------------------------------------------------
# Heaviside and JumpReLU autograd functions
# --------------------------------------------------------------------------------------------
def _step_fn(kind, fwd_gt=True, grad_x="right", th_sign=-1.0, th_bw=True, rect=0.5, theta_factor="theta", use_g=True):
    class Fn(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, threshold, bandwidth):
            ctx.save_for_backward(x, threshold)
            ctx.bandwidth = bandwidth
            on = (x > threshold) if fwd_gt else (x >= threshold)
            return on.to(x.dtype) if kind == "heaviside" else x * on.to(x.dtype)

        @staticmethod
        def backward(ctx, g):
            x, th = ctx.saved_tensors
            bw = ctx.bandwidth
            k = (((x - th) / bw).abs() < rect).to(x.dtype)
            factor = {"theta": th, "one": 1.0, "x": x}[theta_factor] if kind == "jumprelu" else 1.0
            gth = th_sign * factor * k / (bw if th_bw else 1.0)
            if kind == "heaviside":
                gx = {"right": None, "ones": torch.ones_like(x), "rect": k / bw}[grad_x]
            else:
                gx = {"right": (x > th).to(x.dtype), "ones": torch.ones_like(x), "relu": (x > 0).to(x.dtype)}[grad_x]
            if use_g:
                gth = gth * g
                gx = gx * g if gx is not None else None
            return gx, gth, None

    return Fn


HEAVISIDE_BUGS = {
    "grad_x_passthrough": _step_fn("heaviside", grad_x="ones"),
    "grad_sign": _step_fn("heaviside", th_sign=1.0),
    "no_bandwidth": _step_fn("heaviside", th_bw=False),
    "rect_width": _step_fn("heaviside", rect=1.0),
    "no_grad_output": _step_fn("heaviside", use_g=False),
}
JUMPRELU_BUGS = {
    "grad_x_ones": _step_fn("jumprelu", grad_x="ones"),
    "grad_x_relu": _step_fn("jumprelu", grad_x="relu"),
    "no_theta_factor": _step_fn("jumprelu", theta_factor="one"),
    "x_factor": _step_fn("jumprelu", theta_factor="x"),
    "grad_sign": _step_fn("jumprelu", th_sign=1.0),
    "no_bandwidth": _step_fn("jumprelu", th_bw=False),
    "rect_width": _step_fn("jumprelu", rect=1.0),
}


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


@pytest.mark.parametrize(
    "impl", [A.Heaviside, _step_fn("heaviside"), _step_fn("heaviside", fwd_gt=False), _HeavisideZeros]
)
def test_heaviside_variants(impl):
    assert_passes(checks.test_heaviside, impl)


@pytest.mark.parametrize("code", list(HEAVISIDE_BUGS))
def test_heaviside_bugs(code):
    assert_fails(checks.test_heaviside, HEAVISIDE_BUGS[code], code)


@pytest.mark.parametrize("impl", [A.JumpReLU, _step_fn("jumprelu"), _step_fn("jumprelu", fwd_gt=False), _JumpReLUWhere])
def test_jumprelu_variants(impl):
    assert_passes(checks.test_jumprelu, impl)


@pytest.mark.parametrize("code", list(JUMPRELU_BUGS))
def test_jumprelu_bugs(code):
    assert_fails(checks.test_jumprelu, JUMPRELU_BUGS[code], code)


def test_step_function_stubs():
    class Stub(torch.autograd.Function):
        forward = staticmethod(_stub)
        backward = staticmethod(_stub)

    assert_not_done(checks.test_heaviside, Stub)
    assert_not_done(checks.test_jumprelu, Stub)
    assert_fails(checks.test_heaviside, lambda x, t, b: x, "not_function")


# --------------------------------------------------------------------------------------------
# JumpReLU SAE
# --------------------------------------------------------------------------------------------
def _jump(exp=True, acts_mode="jump", sparsity="heaviside"):
    def forward(self, h):
        pre = torch.einsum("bid,ids->bis", h - self.b_dec, self.W_enc) + self.b_enc
        th = (self.log_threshold.exp() if exp else self.log_threshold).expand_as(pre)
        bw = self.cfg.jumprelu_bandwidth
        acts = A.JumpReLU.apply(pre, th, bw) if acts_mode == "jump" else F.relu(pre)
        h_rec = torch.einsum("bis,isd->bid", acts, self.W_dec_normalized) + self.b_dec
        L_sp = {
            "heaviside": lambda: A.Heaviside.apply(pre, th, bw).sum(-1),
            "l1": lambda: acts.sum(-1),
            "count": lambda: (acts > 0).float().sum(-1),
        }[sparsity]()
        d = {"L_reconstruction": (h_rec - h).pow(2).mean(-1), "L_sparsity": L_sp}
        return d, (d["L_reconstruction"] + self.sparsity_coeff * L_sp).mean(0).sum(), acts, h_rec

    return forward


def _jump_relu_first(self, h):
    """Correct: a ReLU before the JumpReLU changes nothing when the threshold is positive."""
    pre = F.relu(einops.einsum(h - self.b_dec, self.W_enc, "b i d, i d s -> b i s") + self.b_enc)
    th = torch.exp(self.log_threshold)[None].expand(pre.shape[0], -1, -1)
    acts = A.JumpReLU.apply(pre, th, self.cfg.jumprelu_bandwidth)
    h_rec = einops.einsum(acts, self.W_dec_normalized, "b i s, i s d -> b i d") + self.b_dec
    l0 = A.Heaviside.apply(pre, th, self.cfg.jumprelu_bandwidth).sum(-1)
    l_rec = F.mse_loss(h_rec, h, reduction="none").mean(-1)
    return {"L_reconstruction": l_rec, "L_sparsity": l0}, (l_rec + self.sparsity_coeff * l0).mean(0).sum(), acts, h_rec


JUMP_BUGS = {
    "no_exp": _jump(exp=False),
    "plain_relu": _jump(acts_mode="relu"),
    "sparsity_l1": _jump(sparsity="l1"),
    "threshold_grad": _jump(sparsity="count"),
}


@pytest.mark.parametrize("fn", [_jump(), _jump_relu_first])
def test_jumprelu_forward_variants(fn):
    assert_passes(checks.test_jumprelu_forward, A.JumpReLUToySAE)
    assert_passes(checks.test_jumprelu_forward, _with(A.JumpReLUToySAE, forward=fn))


@pytest.mark.parametrize("code", list(JUMP_BUGS))
def test_jumprelu_forward_bugs(code):
    assert_fails(checks.test_jumprelu_forward, _with(A.JumpReLUToySAE, forward=JUMP_BUGS[code]), code)


def test_jumprelu_forward_stub():
    assert_not_done(checks.test_jumprelu_forward, _with(A.JumpReLUToySAE, forward=_stub))


# --------------------------------------------------------------------------------------------
# TopK SAE
# --------------------------------------------------------------------------------------------
def _topk(relu=True, dim=-1, k_offset=0, by_abs=False, sparsity_in_loss=False):
    def forward(self, h):
        pre = torch.einsum("bid,ids->bis", h - self.b_dec, self.W_enc) + self.b_enc
        if relu:
            pre = F.relu(pre)
        k = self.cfg.k + k_offset
        score = pre.abs() if by_abs else pre
        idx = score.topk(k, dim=dim).indices
        acts = torch.zeros_like(pre).scatter(dim, idx, pre.gather(dim, idx))
        h_rec = torch.einsum("bis,isd->bid", acts, self.W_dec_normalized) + self.b_dec
        d = {"L_reconstruction": (h_rec - h).pow(2).mean(-1), "L_sparsity": (acts != 0).float().sum(-1)}
        per = d["L_reconstruction"] + (acts.sum(-1) * 0.1 if sparsity_in_loss else 0)
        return d, per.mean(0).sum(), acts, h_rec

    return forward


def _topk_mask(self, h):
    """Correct: a mask from the k-th largest value (no ties in continuous data)."""
    pre = F.relu(einops.einsum(h - self.b_dec, self.W_enc, "b i d, i d s -> b i s") + self.b_enc)
    kth = pre.topk(self.cfg.k, dim=-1).values[..., -1:]
    acts = pre * (pre >= kth)
    h_rec = einops.einsum(acts, self.W_dec_normalized, "b i s, i s d -> b i d") + self.b_dec
    l_rec = ((h_rec - h) ** 2).mean(-1)
    return {"L_reconstruction": l_rec, "L_sparsity": (acts > 0).sum(-1).float()}, l_rec.mean(0).sum(), acts, h_rec


def _topk_sort(self, h):
    """Correct: argsort, then zero everything after the k-th position."""
    pre = (torch.einsum("bid,ids->bis", h - self.b_dec, self.W_enc) + self.b_enc).clamp_min(0)
    order = pre.argsort(dim=-1, descending=True)
    keep = torch.zeros_like(pre, dtype=torch.bool).scatter(-1, order[..., : self.cfg.k], True)
    acts = torch.where(keep, pre, 0.0)
    h_rec = torch.einsum("bis,isd->bid", acts, self.W_dec_normalized) + self.b_dec
    l_rec = F.mse_loss(h_rec, h, reduction="none").mean(-1)
    return {"L_reconstruction": l_rec}, l_rec.mean(0).sum(), acts, h_rec


TOPK_BUGS = {
    "no_relu": _topk(relu=False),
    "too_many": _topk(k_offset=1),
    "acts": _topk(by_abs=True, relu=False),
    "loss": _topk(sparsity_in_loss=True),
}


@pytest.mark.parametrize("fn", [_topk(), _topk_mask, _topk_sort])
def test_topk_variants(fn):
    assert_passes(checks.test_topk_forward, A.TopKToySAE)
    assert_passes(checks.test_topk_forward, _with(A.TopKToySAE, forward=fn))


@pytest.mark.parametrize("code", list(TOPK_BUGS))
def test_topk_bugs(code):
    assert_fails(checks.test_topk_forward, _with(A.TopKToySAE, forward=TOPK_BUGS[code]), code)


def test_topk_wrong_axis_and_stub():
    assert_fails(checks.test_topk_forward, _with(A.TopKToySAE, forward=_topk(dim=-2)), "too_many")
    assert_not_done(checks.test_topk_forward, _with(A.TopKToySAE, forward=_stub))


# --------------------------------------------------------------------------------------------
# AuxK
# --------------------------------------------------------------------------------------------
def _auxk(mask_value=-torch.inf, relu=False, live=False, reduce="mean", keep_inf=False, all_dead=False, detach=False):
    def auxk_loss(pre, residual, dead, W_dec, k_aux):
        x = pre.relu() if relu else pre
        if detach:
            x = x.detach()
        masked = x if live else torch.where(dead, x, torch.full_like(x, mask_value))
        if all_dead:
            acts = torch.where(dead, x, torch.zeros_like(x))
        else:
            top = masked.topk(k_aux, dim=-1)
            values = top.values if keep_inf else torch.nan_to_num(top.values, neginf=0.0)
            acts = torch.zeros_like(x).scatter(-1, top.indices, values)
        err = (residual - torch.einsum("bis,isd->bid", acts, W_dec)).pow(2)
        return err.mean(-1) if reduce == "mean" else err.sum(-1)

    return auxk_loss


def _auxk_loop(pre, residual, dead, W_dec, k_aux):
    per_inst = []
    for i in range(pre.shape[1]):
        idx = dead[i].nonzero().squeeze(-1)
        acts = torch.zeros_like(pre[:, i])
        if idx.numel() > 0:
            top = pre[:, i, idx].topk(min(k_aux, idx.numel()), dim=-1)
            acts = acts.scatter(-1, idx[top.indices], top.values)
        per_inst.append((residual[:, i] - acts @ W_dec[i]).pow(2).mean(-1))
    return torch.stack(per_inst, dim=1)


def _auxk_sort(pre, residual, dead, W_dec, k_aux):
    masked = pre.masked_fill(~dead, float("-inf"))
    kth = masked.sort(dim=-1, descending=True).values[..., k_aux - 1 : k_aux]
    keep = dead & (masked >= kth)
    acts = pre * keep
    return ((residual - einops.einsum(acts, W_dec, "b i s, i s d -> b i d")) ** 2).mean(-1)


AUXK_BUGS = {
    "dropped_negatives": _auxk(relu=True),
    "used_live_latents": _auxk(live=True),
    "sum_over_d_in": _auxk(reduce="sum"),
    "all_dead_latents": _auxk(all_dead=True),
    "inf": _auxk(keep_inf=True),
    "no_grad": _auxk(detach=True),
}


@pytest.mark.parametrize("fn", [A.auxk_loss, _auxk(), _auxk_loop, _auxk_sort])
def test_auxk_variants(fn):
    assert_passes(checks.test_auxk_loss, fn)


@pytest.mark.parametrize("code", AUXK_BUGS)
def test_auxk_bugs(code):
    assert_fails(checks.test_auxk_loss, AUXK_BUGS[code], code)


def test_auxk_masked_with_zero():
    assert_fails(checks.test_auxk_loss, _auxk(mask_value=0.0), "dropped_negatives")


def test_auxk_stub():
    assert_not_done(checks.test_auxk_loss, _stub)


# --------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------
METRIC_CASES = {
    "l0_norm": (
        checks.test_l0_norm,
        [
            A.l0_norm,
            lambda a: (a > 0).float().sum(-1).mean(0),
            lambda a: torch.count_nonzero(a, dim=-1).float().mean(0),
            lambda a: einops.reduce((a != 0).float(), "b i s -> i", "sum") / a.shape[0],
        ],
        {
            "fraction": lambda a: (a > 0).float().mean((0, 2)),
            "l1": lambda a: a.sum(-1).mean(0),
            "batch_sum": lambda a: (a > 0).float().sum((0, 2)),
            "shape": lambda a: (a > 0).float().sum(-1),
        },
    ),
    "fraction_variance_explained": (
        checks.test_fraction_variance_explained,
        [
            A.fraction_variance_explained,
            lambda h, r: 1 - F.mse_loss(r, h, reduction="none").sum((0, 2)) / ((h - h.mean(0)) ** 2).sum((0, 2)),
            lambda h, r: 1 - ((h - r) ** 2).mean((0, 2)) / h.var(0, unbiased=False).mean(-1),
            lambda h, r: torch.stack(
                [
                    1 - ((h[:, k] - r[:, k]) ** 2).sum() / ((h[:, k] - h[:, k].mean(0)) ** 2).sum()
                    for k in range(h.shape[1])
                ]
            ),
        ],
        {
            "not_centered": lambda h, r: 1 - ((h - r) ** 2).sum((0, 2)) / (h**2).sum((0, 2)),
            "fvu": lambda h, r: ((h - r) ** 2).sum((0, 2)) / ((h - h.mean(0)) ** 2).sum((0, 2)),
            "per_dim": lambda h, r: (1 - ((h - r) ** 2).sum(0) / ((h - h.mean(0)) ** 2).sum(0)).mean(-1),
            "ratio_of_means": lambda h, r: 1 - (((h - r) ** 2).sum(-1) / ((h - h.mean(0)) ** 2).sum(-1)).mean(0),
            "shape": lambda h, r: 1 - ((h - r) ** 2).sum() / ((h - h.mean(0)) ** 2).sum(),
        },
    ),
    "dead_latent_fraction": (
        checks.test_dead_latent_fraction,
        [
            A.dead_latent_fraction,
            lambda a: 1 - (a > 0).any(0).float().mean(-1),
            lambda a: (a.abs().sum(0) == 0).sum(-1) / a.shape[-1],
            lambda a: (a.max(0).values <= 0).float().mean(-1),
        ],
        {
            "count": lambda a: (a == 0).all(0).float().sum(-1),
            "any": lambda a: (a == 0).any(0).float().mean(-1),
            "zero_entries": lambda a: (a == 0).float().mean((0, 2)),
            "shape": lambda a: (a == 0).all(0).float(),
        },
    ),
    "feature_recovery": (
        checks.test_feature_recovery,
        [
            A.feature_recovery,
            lambda Wf, Wd: torch.einsum("isd,idf->isf", F.normalize(Wd, dim=-1), F.normalize(Wf, dim=1)).amax(1),
            lambda Wf, Wd: F.cosine_similarity(Wd[:, :, :, None], Wf[:, None, :, :], dim=2).max(1).values,
            lambda Wf, Wd: torch.stack(
                [(F.normalize(Wd[k], dim=1) @ F.normalize(Wf[k], dim=0)).max(0).values for k in range(Wf.shape[0])]
            ),
        ],
        {
            "abs": lambda Wf, Wd: F.cosine_similarity(Wd[:, :, :, None], Wf[:, None], dim=2).abs().max(1).values,
            "mean": lambda Wf, Wd: F.cosine_similarity(Wd[:, :, :, None], Wf[:, None], dim=2).mean(1),
            "unnormalized": lambda Wf, Wd: torch.einsum("isd,idf->isf", Wd, F.normalize(Wf, dim=1)).max(1).values,
            "values": lambda Wf, Wd: (
                torch.einsum("isd,idf->isf", F.normalize(Wd, dim=-1), F.normalize(Wf, dim=-1)).max(1).values
            ),
            "shape": lambda Wf, Wd: F.cosine_similarity(Wd[:, :, :, None], Wf[:, None], dim=2).max(2).values,
        },
    ),
}


@pytest.mark.parametrize(
    ("name", "i"), [(name, i) for name, (_, good, _) in METRIC_CASES.items() for i in range(len(good))]
)
def test_metric_variants(name, i):
    check, good, _ = METRIC_CASES[name]
    assert_passes(check, good[i])


@pytest.mark.parametrize(
    ("name", "code"), [(name, code) for name, (_, _, bugs) in METRIC_CASES.items() for code in bugs]
)
def test_metric_bugs(name, code):
    check, _, bugs = METRIC_CASES[name]
    assert_fails(check, bugs[code], code)


@pytest.mark.parametrize("name", list(METRIC_CASES))
def test_metric_stubs(name):
    assert_not_done(METRIC_CASES[name][0], _stub)


def test_every_checker_passes_the_reference():
    """Every checker accepts the reference (their speed is measured by `make bench`, not asserted here)."""
    cases = [
        (checks.test_gated_forward, A.GatedToySAE),
        (checks.test_heaviside, A.Heaviside),
        (checks.test_jumprelu, A.JumpReLU),
        (checks.test_jumprelu_forward, A.JumpReLUToySAE),
        (checks.test_topk_forward, A.TopKToySAE),
        (checks.test_auxk_loss, A.auxk_loss),
    ] + [(check, good[0]) for check, good, _ in METRIC_CASES.values()]
    for check, impl in cases:
        assert_passes(check, impl)
