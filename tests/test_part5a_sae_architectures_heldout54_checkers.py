"""Held-out round BA (fresh54), part 5a: what the round's misleading and unnamed mistakes are now named as, and its
correct variants.

* Heaviside's θ-gradient multiplied by the step 1[x > θ] (or 1[x <= θ]): the half-window hint offered only "an edge
  at u = 0" as the cause; it now names the gate too (window_half).
* dead_latent_fraction judged on the first and last example only coincided with the firing-rate-below-1e-3 mutant
  ("a latent that fires rarely is alive"): the inputs now separate them and it is named (edge_examples_only).
* dead_latent_fraction as acts.prod(0) == 0 (every latent dead: a product underflows) was read as "a tolerance t
  above 9": a fraction of 1 everywhere now names any / prod / a tolerance above every activation
  (every_latent_dead).
* A θ-gradient with its sign flipped *and* another factor (Heaviside's +K(u)·g: minus and 1/ε dropped; JumpReLU's
  +K(u)/ε·g: minus and θ dropped) was "a constant factor" or "differs": the factor reading now allows a sign
  (epsilon_power, theta_factor).
* L_reconstruction computed from the dense code (every latent's ReLU(pre) decoded, before the top-k or threshold;
  ReLU(π_mag) before the gate) while h_reconstructed is right: was "differs" with the formula (rec_loss_dense).
* The Gated SAE's magnitude path scaled by 1 + r_mag (exp linearised): was "differs"; the per-latent scale is read
  back from acts_post (r_mag_scale).
* The Gated loss with L_aux weighted 0.5: was "the reconstruction part is 0.77 x the expected"; the terms' weights
  are read from the loss on four batches (term_weight).
* The Gated SAE's L_sparsity as the number of open gates, (π_gate > 0).sum(-1): was "differs" (sparsity_gate_count).
* AuxK: a loop over instances whose top-k over the dead subset scatters at positions within the subset
  (subset_positions), and a loss averaged over the batch and broadcast back (reduced_broadcast): both were "differs".
* AuxK with two slips, the sum over d_in and a catalogue slip (e.g. the chosen values clamped at 0): was "differs";
  each catalogue mistake is read with the sum too (sum_and_slip).
* l0_norm as a loop over examples 1 .. n-1 whose total is divided by n: was "differs" (example_dropped_first).
* JumpReLU SAE: L_sparsity's Heaviside given pre without b_enc (l0_pre_no_b_enc) or a threshold of 0
  (l0_zero_threshold), acts_post right: both were "differs".
* JumpReLU SAE encoding with the decoder transposed (tied weights): was "differs" (decoder_encoder).
* dead_latent_fraction with two slips, a count (not divided by d_sae) and a catalogue slip such as .any(0): was
  "differs"; the count of each catalogue entry is read now (count_and_slip).
* AuxK with the -inf picks removed by values.clamp(min=0) (which drops the negative dead values too): the hint
  (dropped_negatives) now names a clamp on the chosen values.
"""

from __future__ import annotations

import einops
import pytest
import torch
import torch.nn.functional as F

import solutions.part5a_sae_architectures as A
import tests.part5a_sae_architectures as C
from tests.proving import assert_fails, assert_passes


def _enc(x, W):
    return einops.einsum(x, W, "b i d, i d s -> b i s")


def _dec(a, W):
    return einops.einsum(a, W, "b i s, i s d -> b i d")


def _heaviside(mode):
    class H(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, threshold, bandwidth):
            ctx.save_for_backward(x, threshold)
            ctx.bandwidth = bandwidth
            if mode == "ok_sign":
                return torch.sign(x - threshold).clamp(min=0)
            return (x > threshold).to(x.dtype)

        @staticmethod
        def backward(ctx, g):
            x, th = ctx.saved_tensors
            bw = ctx.bandwidth
            k = A.rectangle((x - th) / bw)
            gth = -k / bw * g
            if mode == "fired_only":
                gth = gth * (x > th).to(x.dtype)
            elif mode == "unfired_only":
                gth = gth * (x <= th).to(x.dtype)
            elif mode == "plus_no_bw":
                gth = k * g
            return torch.zeros_like(x), gth, None

    return H


@pytest.mark.parametrize(("mode", "gate"), [("fired_only", "1[x > θ]"), ("unfired_only", "1[x <= θ]")])
def test_heaviside_window_gated(mode, gate):
    failure = assert_fails(C.test_heaviside, _heaviside(mode), "window_half")
    assert gate in failure.hint


def test_heaviside_correct_variants():
    assert_passes(C.test_heaviside, _heaviside("ok_sign"))


def test_dead_edge_examples_only():
    assert_fails(
        C.test_dead_latent_fraction, lambda a: ((a[0] == 0) & (a[-1] == 0)).to(a.dtype).mean(-1), "edge_examples_only"
    )


def test_dead_every_latent():
    failure = assert_fails(
        C.test_dead_latent_fraction, lambda a: (a.prod(0) == 0).to(a.dtype).mean(-1), "every_latent_dead"
    )
    assert "prod" in failure.hint


def test_dead_count_and_slip():
    failure = assert_fails(C.test_dead_latent_fraction, lambda a: (a == 0).any(0).to(a.dtype).sum(-1), "count_and_slip")
    assert "any" in failure.hint


def test_dead_correct_variants():
    for ok in (
        lambda a: (a.sum(0) == 0).to(a.dtype).mean(-1),
        lambda a: (~(a > 0).any(0)).to(a.dtype).mean(-1),
        lambda a: (a.amax(0) <= 0).to(a.dtype).mean(-1),
        lambda a: (a.count_nonzero(0) == 0).sum(-1).to(a.dtype) / a.shape[-1],
    ):
        assert_passes(C.test_dead_latent_fraction, ok)


def _jumprelu_plus(x_factor=False):
    class J(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, threshold, bandwidth):
            ctx.save_for_backward(x, threshold)
            ctx.bandwidth = bandwidth
            return x * (x > threshold).to(x.dtype)

        @staticmethod
        def backward(ctx, g):
            x, th = ctx.saved_tensors
            k = A.rectangle((x - th) / ctx.bandwidth)
            return (x > th).to(x.dtype) * g, (x if x_factor else 1) * k / ctx.bandwidth * g, None

    return J


def test_theta_gradient_sign_and_factor():
    failure = assert_fails(C.test_heaviside, _heaviside("plus_no_bw"), "epsilon_power")
    assert "sign is flipped" in failure.hint
    failure = assert_fails(C.test_jumprelu, _jumprelu_plus(), "theta_factor")
    assert "not -1" in failure.hint and "sign is flipped" in failure.hint


def _dense_loss(base):
    class Dense(base):
        def forward(self, h):
            d, _, acts, h_rec = base.forward(self, h)
            proj = _enc(h - self.b_dec, self.W_enc)
            gated = base is A.GatedToySAE
            dense = F.relu(proj * self.r_mag.exp() + self.b_mag) if gated else F.relu(proj + self.b_enc)
            d = d | {"L_reconstruction": (_dec(dense, self.W_dec_normalized) + self.b_dec - h).pow(2).mean(-1)}
            per = d["L_reconstruction"] + self.sparsity_coeff * d.get("L_sparsity", 0) * (base is not A.TopKToySAE)
            per = per + d.get("L_aux", 0)
            return d, per.mean(0).sum(), acts, h_rec

    return Dense


@pytest.mark.parametrize(
    ("check", "base"),
    [
        (C.test_topk_forward, A.TopKToySAE),
        (C.test_jumprelu_forward, A.JumpReLUToySAE),
        (C.test_gated_forward, A.GatedToySAE),
    ],
)
def test_rec_loss_from_dense_code(check, base):
    assert_fails(check, _dense_loss(base), "rec_loss_dense")


def _gated(mode):
    class G(A.GatedToySAE):
        def forward(self, h):
            d, _, acts, h_rec = A.GatedToySAE.forward(self, h)
            proj = _enc(h - self.b_dec, self.W_enc)
            gate_pre = proj + self.b_enc
            if mode == "linear":
                acts = (gate_pre > 0).to(h.dtype) * F.relu(proj * (1 + self.r_mag) + self.b_mag)
                h_rec = _dec(acts, self.W_dec_normalized) + self.b_dec
                d = d | {"L_reconstruction": (h_rec - h).pow(2).mean(-1)}
            if mode == "gate_count":
                d = d | {"L_sparsity": (gate_pre > 0).to(h.dtype).sum(-1)}
            per = (
                d["L_reconstruction"]
                + self.sparsity_coeff * d["L_sparsity"]
                + d["L_aux"] * (0.5 if mode == "half" else 1)
            )
            return d, per.mean(0).sum(), acts, h_rec

    return G


def test_gated_sparsity_gate_count():
    assert_fails(C.test_gated_forward, _gated("gate_count"), "sparsity_gate_count")


def test_gated_magnitude_scale():
    assert "1 + r_mag" in assert_fails(C.test_gated_forward, _gated("linear"), "r_mag_scale").message
    assert_passes(C.test_gated_forward, _gated("ok"))
    assert "L_aux by 0.5" in assert_fails(C.test_gated_forward, _gated("half"), "term_weight").message


def _auxk(mode):
    def f(pre, residual, dead, W, k_aux):
        if mode in ("clamped", "clamped_sum"):
            top = torch.where(dead, pre, -torch.inf).topk(k_aux, dim=-1)
            acts = torch.zeros_like(pre).scatter(-1, top.indices, top.values.clamp(min=0))
        elif mode == "subset_positions":
            acts = torch.zeros_like(pre)
            for i in range(pre.shape[1]):
                idx = dead[i].nonzero().squeeze(-1)
                if idx.numel():
                    t = pre[:, i, idx].topk(min(k_aux, idx.numel()), dim=-1)
                    acts[:, i] = acts[:, i].scatter(-1, t.indices, t.values)
        else:
            top = torch.where(dead, pre, -torch.inf).topk(k_aux, dim=-1)
            vals = torch.nan_to_num(top.values, neginf=0.0) if mode == "ok_nan_to_num" else top.values.clamp(min=-1e30)
            vals = torch.where(vals == -1e30, torch.zeros_like(vals), vals)
            acts = torch.zeros_like(pre).scatter(-1, top.indices, vals)
        loss = (residual - _dec(acts, W)).pow(2).mean(-1)
        if mode == "clamped_sum":
            loss = loss * residual.shape[-1]
        return loss.mean(0).expand_as(loss) if mode == "batch_mean" else loss

    return f


def test_auxk_slips():
    assert_fails(C.test_auxk_loss, _auxk("subset_positions"), "subset_positions")
    assert_fails(C.test_auxk_loss, _auxk("clamped_sum"), "sum_and_slip")
    assert_fails(C.test_auxk_loss, _auxk("batch_mean"), "reduced_broadcast")
    assert "clamp(min=0)" in assert_fails(C.test_auxk_loss, _auxk("clamped"), "dropped_negatives").hint
    assert_passes(C.test_auxk_loss, _auxk("ok_nan_to_num"))
    assert_passes(C.test_auxk_loss, _auxk("ok_clamped_sentinel"))


def _l0_loop(start, stop):
    def f(acts):
        total = torch.zeros(acts.shape[1], dtype=acts.dtype, device=acts.device)
        for b in range(start, acts.shape[0] + stop):
            total = total + (acts[b] != 0).to(acts.dtype).sum(-1)
        return total / acts.shape[0]

    return f


def test_l0_loop_off_by_one():
    assert_fails(C.test_l0_norm, _l0_loop(1, 0), "example_dropped_first")
    assert_fails(C.test_l0_norm, _l0_loop(0, -1), "example_dropped_last")
    assert_passes(C.test_l0_norm, _l0_loop(0, 0))
    assert_passes(C.test_l0_norm, lambda a: torch.linalg.vector_norm(a, ord=0, dim=-1).mean(0))


def _jumprelu_sae(mode):
    class J(A.JumpReLUToySAE):
        def forward(self, h):
            W_enc = self.W_dec_normalized.mT if mode == "tied" else self.W_enc
            pre = _enc(h - self.b_dec, W_enc) + self.b_enc
            bw = self.cfg.jumprelu_bandwidth
            th = self.log_threshold.exp() if mode == "ok_no_expand" else self.log_threshold.exp().expand_as(pre)
            acts = A.JumpReLU.apply(pre, th, bw)
            if mode == "no_b_enc":
                count = A.Heaviside.apply(pre - self.b_enc, th, bw)
            elif mode == "zero":
                count = A.Heaviside.apply(pre, torch.zeros_like(th), bw)
            else:
                count = A.Heaviside.apply(pre.detach() if mode == "ok_detached" else pre, th, bw)
            h_rec = _dec(acts, self.W_dec_normalized) + self.b_dec
            d = {"L_reconstruction": (h_rec - h).pow(2).mean(-1), "L_sparsity": count.sum(-1)}
            return d, (d["L_reconstruction"] + self.sparsity_coeff * d["L_sparsity"]).mean(0).sum(), acts, h_rec

    return J


def test_jumprelu_sae_l0_counts():
    assert_fails(C.test_jumprelu_forward, _jumprelu_sae("no_b_enc"), "l0_pre_no_b_enc")
    assert_fails(C.test_jumprelu_forward, _jumprelu_sae("zero"), "l0_zero_threshold")
    assert_fails(C.test_jumprelu_forward, _jumprelu_sae("tied"), "decoder_encoder")
    assert_passes(C.test_jumprelu_forward, _jumprelu_sae("ok_no_expand"))
    assert_passes(C.test_jumprelu_forward, _jumprelu_sae("ok_detached"))
