"""Proofs for part 5a's diagnoses added after the fresh9 held-out measurement: b_dec left out of one gated path
only, ∂JumpReLU/∂x given as the forward, θ = softplus(log_threshold), the JumpReLU reconstruction compared with
h - b_dec, TopK choosing latents by ReLU(pre) × decoder norm, AuxK divided by k_aux, the metrics on example 0
alone, FVE clamped at 0 (an instance reconstructs worse than its mean), and metrics that write into the caller's
tensors (acts binarised, h edited through an alias, W_dec normalised in place)."""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import solutions.part5a_sae_architectures as A
import tests.part5a_sae_architectures as C
from tests.proving import assert_fails


def W(base, **m):
    return type("Heldout3", (base,), m)


rect = A.rectangle
INF = float("inf")


# ---------------- gated forward
def gated(bug=None):
    def forward(self, h):
        x = h - self.b_dec
        if bug is None:  # correct: explicit magnitude weights, (gate > 0).float()
            W_mag = self.W_enc * self.r_mag.exp()[:, None, :]
            gate_pre = torch.einsum("bid,ids->bis", x, self.W_enc) + self.b_enc
            mag_pre = torch.einsum("bid,ids->bis", x, W_mag) + self.b_mag
        else:
            gate_in = h if bug == "gate_no_b_dec" else x  # b_dec subtracted in one path only
            mag_in = h if bug == "mag_no_b_dec" else x
            gate_pre = einops.einsum(gate_in, self.W_enc, "b i d, i d s -> b i s") + self.b_enc
            mag_pre = einops.einsum(mag_in, self.W_enc, "b i d, i d s -> b i s") * self.r_mag.exp() + self.b_mag
        acts = (gate_pre > 0).float() * F.relu(mag_pre)
        Wn = self.W_dec_normalized
        h_rec = einops.einsum(acts, Wn, "b i s, i s d -> b i d") + self.b_dec
        gp = F.relu(gate_pre)
        via = einops.einsum(gp, Wn.detach(), "b i s, i s d -> b i d") + self.b_dec.detach()
        d = {
            "L_reconstruction": (h_rec - h).pow(2).mean(-1),
            "L_sparsity": gp.sum(-1),
            "L_aux": (via - h).pow(2).mean(-1),
        }
        loss = (d["L_reconstruction"] + self.sparsity_coeff * d["L_sparsity"] + d["L_aux"]).sum(0).div(h.shape[0]).sum()
        return d, loss, acts, h_rec

    return forward


# ---------------- Heaviside
def heavi(bug=None):
    class H(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, threshold, bandwidth):
            ctx.save_for_backward(x, threshold)
            ctx.bandwidth = bandwidth
            return torch.where(x > threshold, torch.ones_like(x), torch.zeros_like(x))

        @staticmethod
        def backward(ctx, g):
            x, th = ctx.saved_tensors
            bw = ctx.bandwidth
            if bug == "no_grad_output":  # grad_output never multiplied in
                gth = -rect((x - th) / bw) / bw
            elif bug == "u_times_bw":  # u = (x - θ)·ε (multiplied, not divided)
                gth = -rect((x - th) * bw) / bw * g
            else:  # correct: window test written as ε/2 bounds
                inside = ((x > th - bw / 2) & (x < th + bw / 2)).to(x.dtype)
                gth = -inside * g / bw
            return None, gth, None

    return H


# ---------------- JumpReLU
def jrelu(bug=None):
    class J(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, threshold, bandwidth):
            ctx.save_for_backward(x, threshold)
            ctx.bandwidth = bandwidth
            if bug is None:  # correct: relu(x)·H (θ > 0 so identical)
                return F.relu(x) * (x > threshold).to(x.dtype)
            return x * (x > threshold).to(x.dtype)

        @staticmethod
        def backward(ctx, g):
            x, th = ctx.saved_tensors
            bw = ctx.bandwidth
            K = rect((x - th) / bw)
            on = (x > th).to(x.dtype)
            gth = -(th / bw) * K if bug == "th_no_g" else -(th / bw) * K * g  # θ-grad without grad_output
            gx = x * on * g if bug == "gx_is_forward" else on * g  # grad_x = forward output times g
            return gx, gth, None

    return J


# ---------------- JumpReLU SAE forward
def jfwd(bug=None):
    def forward(self, h):
        pre = einops.einsum(h - self.b_dec, self.W_enc, "b i d, i d s -> b i s") + self.b_enc
        th = F.softplus(self.log_threshold) if bug == "softplus" else self.log_threshold.exp()
        th = th.expand(h.shape[0], -1, -1) if bug is None else th.expand_as(pre)
        bw = self.cfg.jumprelu_bandwidth
        acts = A.JumpReLU.apply(pre, th, bw)
        h_rec = einops.einsum(acts, self.W_dec_normalized, "b i s, i s d -> b i d") + self.b_dec
        target = h - self.b_dec if bug == "rec_centred" else h  # reconstruction compared with h - b_dec
        d = {"L_reconstruction": (h_rec - target).pow(2).mean(-1), "L_sparsity": A.Heaviside.apply(pre, th, bw).sum(-1)}
        loss = (d["L_reconstruction"] + self.sparsity_coeff * d["L_sparsity"]).mean(0).sum()
        return d, loss, acts, h_rec

    return forward


# ---------------- TopK forward
def tfwd(bug=None):
    def forward(self, h):
        pre = F.relu(einops.einsum(h - self.b_dec, self.W_enc, "b i d, i d s -> b i s") + self.b_enc)
        k = self.cfg.k
        if bug == "dec_norm_select":  # selects by pre × ‖W_dec row‖ (Anthropic-style), keeps pre's values
            score = pre * self.W_dec.norm(dim=-1)
            idx = score.topk(k, dim=-1).indices
            acts = torch.zeros_like(pre).scatter(-1, idx, pre.gather(-1, idx))
        elif bug is None:  # correct: k rounds of argmax, each masked out
            acts = torch.zeros_like(pre)
            work = pre.detach().clone()
            for _ in range(k):
                j = work.argmax(-1, keepdim=True)
                acts = acts + torch.zeros_like(pre).scatter(-1, j, pre.gather(-1, j))
                work.scatter_(-1, j, -INF)
        else:
            top = pre.topk(k, dim=-1)
            acts = torch.zeros_like(pre).scatter(-1, top.indices, top.values)
        h_rec = einops.einsum(acts, self.W_dec_normalized, "b i s, i s d -> b i d") + self.b_dec
        Ls = (acts > 0).float().mean(-1) if bug == "frac" else (acts > 0).float().sum(-1)  # fraction, not count
        d = {"L_reconstruction": (h_rec - h).pow(2).mean(-1), "L_sparsity": Ls}
        return d, d["L_reconstruction"].mean(0).sum(), acts, h_rec

    return forward


# ---------------- AuxK
def auxk(bug=None):
    def f(pre, residual, dead, W_dec_normalized, k_aux):
        if bug is None:  # correct: descending sort, first k_aux, -inf replaced via where, scatter_add
            vals, idx = torch.where(dead, pre, -INF).sort(-1, descending=True)
            vals, idx = vals[..., :k_aux], idx[..., :k_aux]
            vals = torch.where(vals > -INF, vals, torch.zeros_like(vals))
            acts = torch.zeros_like(pre).scatter_add(-1, idx, vals)
        else:
            top = torch.where(dead, pre, -INF).topk(k_aux, dim=-1)
            v = torch.where(top.values.isfinite(), top.values, torch.zeros_like(top.values))
            if bug == "detached_values":  # chosen values detached (indices only matter?)
                v = v.detach()
            acts = torch.zeros_like(pre).scatter(-1, top.indices, v)
        rh = einops.einsum(acts, W_dec_normalized, "b i s, i s d -> b i d")
        out = (residual - rh).pow(2).mean(-1)
        return out / k_aux if bug == "div_k" else out  # averaged over the k_aux chosen latents too

    return f


# ---------------- metrics
def l0_first(acts):
    return (acts[0] != 0).float().sum(-1)  # example 0 only


def l0_inplace(acts):  # binarises the caller's tensor in place
    acts[acts != 0] = 1.0
    return acts.sum(-1).mean(0)


def l0_good(acts):
    return (acts != 0).float().mean(0).sum(-1)  # mean over batch first, then sum over latents


def fve_clamped(h, hr):  # "FVE can't be negative": clamped at 0
    r = (h - hr).pow(2).sum((0, 2))
    t = (h - h.mean(0, keepdim=True)).pow(2).sum((0, 2))
    return (1 - r / t).clamp(min=0)


def fve_alias(h, hr):  # residual = h; residual -= h_rec edits h in place, the total then uses the residual
    residual = h
    residual -= hr
    r = residual.pow(2).sum((0, 2))
    t = (h - h.mean(0, keepdim=True)).pow(2).sum((0, 2))
    return 1 - r / t


def fve_good(h, hr):  # correct: (total - residual) / total, mse_loss none
    r = F.mse_loss(hr, h, reduction="none").sum((0, 2))
    t = ((h - h.mean(0)) ** 2).sum((0, 2))
    return (t - r) / t


def dead_first(acts):
    return (acts[0] == 0).float().mean(-1)  # zero on example 0 only


def dead_numel(acts):  # divided by dead.numel() (inst × d_sae), not d_sae
    dead = (acts == 0).all(0)
    return dead.sum(-1).float() / dead.numel()


def dead_good(acts):
    return (acts == 0).float().prod(0).mean(-1)  # product over the batch of zero indicators


def rec_clamped(Wf, Wd):  # cosine clamped to [0, 1]
    fh = Wf / (Wf.norm(dim=1, keepdim=True) + 1e-8)
    dh = Wd / (Wd.norm(dim=-1, keepdim=True) + 1e-8)
    return torch.einsum("isd,idf->isf", dh, fh).clamp(0, 1).max(1).values


def rec_inplace(Wf, Wd):  # normalises the caller's decoder in place
    Wd /= Wd.norm(dim=-1, keepdim=True) + 1e-8
    fh = Wf / (Wf.norm(dim=1, keepdim=True) + 1e-8)
    return torch.einsum("isd,idf->isf", Wd, fh).max(1).values


def rec_good(Wf, Wd):  # correct: cos laid out [inst feats d_sae], max over the last axis
    fh = Wf / (Wf.norm(dim=1, keepdim=True) + 1e-8)
    dh = Wd / (Wd.norm(dim=-1, keepdim=True) + 1e-8)
    return torch.einsum("isd,idf->ifs", dh, fh).max(-1).values


G, J, T = A.GatedToySAE, A.JumpReLUToySAE, A.TopKToySAE

CASES = [
    (C.test_gated_forward, lambda: W(G, forward=gated("mag_no_b_dec")), "mag_reads_h"),
    (C.test_gated_forward, lambda: W(G, forward=gated("gate_no_b_dec")), "gate_reads_h"),
    (C.test_jumprelu, lambda: jrelu("gx_is_forward"), "grad_x_is_forward"),
    (C.test_jumprelu_forward, lambda: W(J, forward=jfwd("softplus")), "softplus_threshold"),
    (C.test_jumprelu_forward, lambda: W(J, forward=jfwd("rec_centred")), "rec_target_centred"),
    (C.test_topk_forward, lambda: W(T, forward=tfwd("dec_norm_select")), "topk_by_decoder_norm"),
    (C.test_auxk_loss, lambda: auxk("div_k"), "divided_by_k_aux"),
    (C.test_l0_norm, lambda: l0_first, "single_example"),
    (C.test_l0_norm, lambda: l0_inplace, "input_modified"),
    (C.test_fraction_variance_explained, lambda: fve_alias, "input_modified"),
    (C.test_dead_latent_fraction, lambda: dead_first, "single_example"),
    (C.test_feature_recovery, lambda: rec_inplace, "input_modified"),
]


def test_heldout3_cases():
    for check, impl, code in CASES:
        assert_fails(check, impl(), code)


def test_fve_clamped_at_zero():  # one instance reconstructs worse than its mean: FVE < 0 must come back as it is
    err = assert_fails(C.test_fraction_variance_explained, fve_clamped, "one_change")
    assert "relu" in err.hint or "clamp" in err.hint


# ---------------- fresh10: a non-strict step, saved tensors read in another order, a hard-coded k, a rounded L0
def _step(kind, ge=False, swap=False):
    class Step(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, threshold, bandwidth):
            ctx.save_for_backward(x, threshold)
            ctx.bandwidth = bandwidth
            on = (x >= threshold) if ge else (x > threshold)
            return on.to(x.dtype) * (x if kind == "jumprelu" else 1)

        @staticmethod
        def backward(ctx, g):
            if swap:
                t, x = ctx.saved_tensors
            else:
                x, t = ctx.saved_tensors
            bw = ctx.bandwidth
            k = rect((x - t) / bw) / bw
            if kind == "jumprelu":
                return (x > t).to(g.dtype) * g, -t * k * g, None
            return torch.zeros_like(x), -k * g, None

    return Step


def test_heaviside_non_strict_step():
    err = assert_fails(C.test_heaviside, _step("heaviside", ge=True), "one_change")
    assert ">=" in err.hint


def test_jumprelu_non_strict_step():
    assert_fails(C.test_jumprelu, _step("jumprelu", ge=True), "one_change")


def test_jumprelu_saved_tensors_in_another_order():
    assert_fails(C.test_jumprelu, _step("jumprelu", swap=True), "saved_order")


def test_topk_k_hard_coded():
    for fixed in (1, 2):

        def forward(self, h, fixed=fixed):
            pre = F.relu(
                einops.einsum(h - self.b_dec, self.W_enc, "batch inst d_in, inst d_in d_sae -> batch inst d_sae")
                + self.b_enc
            )
            top = pre.topk(fixed, dim=-1)
            acts = torch.zeros_like(pre).scatter(-1, top.indices, top.values)
            h_rec = einops.einsum(acts, self.W_dec_normalized, "batch inst d_sae, inst d_sae d_in -> batch inst d_in")
            rec = (h_rec + self.b_dec - h).pow(2).mean(-1)
            return {"L_reconstruction": rec, "L_sparsity": (acts > 0).float().sum(-1)}, rec.mean(0).sum(), acts, h_rec

        assert_fails(C.test_topk_forward, W(A.TopKToySAE, forward=forward), "k_ignored")


def test_l0_rounded():
    assert_fails(C.test_l0_norm, lambda acts: (acts != 0).float().sum(-1).mean(0).round(), "rounded")
    assert_fails(C.test_l0_norm, lambda acts: (acts != 0).float().sum(-1).mean(0).long().float(), "rounded")


def test_dead_any_flag_and_constant_latent_named():  # fresh11
    assert_fails(C.test_dead_latent_fraction, lambda a: (a == 0).all(0).any(-1).float(), "any_dead_flag")
    assert_fails(C.test_dead_latent_fraction, lambda a: (a.std(0) == 0).float().mean(-1), "constant_latent")
