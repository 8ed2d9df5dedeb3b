"""Held-out round BB (fresh55), part 5a: what the round's misleading and unnamed mistakes are now named as, and its
correct variants.

* Heaviside's forward calling ctx.mark_non_differentiable on its output: the hint said "return a tensor computed from
  x" (misleading: it is); it now names mark_non_differentiable (no_grad).
* TopK's logged L_sparsity divided by k: was "divided by the largest value (5)" (k = 5 by coincidence, misleading);
  now read as the count times a named size (sparsity_scaled_by_size). L_sparsity averaged over the batch (shape
  [inst]) was a generic missing-axis hint (sparsity_batch_reduced).
* One path of a forward detached while every value is right: the encoder's x = h - b_dec.detach(), the Gated
  magnitude path's proj.detach() (and the gate path's, the main decoder's W_dec / b_dec): was "the gradients of b_dec
  are wrong: a term missing, extra or detached"; each forward is rebuilt with one path detached and the matching one
  named (detached_enc_b_dec, detached_mag_proj, ...).
* TopK keeping the k·batch largest activations of an instance over the whole batch (BatchTopK): was "at most k per
  example" (batch_topk).
* fraction_variance_explained with two slips (an uncentred total and per-d_in ratios averaged): was the formula; the
  residual, total and aggregation are read as a combination and each slip named (fve_slips).
* feature_recovery returning torch.max's (values, indices) pair (values_and_indices), or topk(1)'s values with the
  latent axis kept, shape (inst, 1, feats) (latent_axis_kept): both were generic.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import solutions.part5a_sae_architectures as A
import tests.part5a_sae_architectures as C
from tests.proving import assert_fails, assert_passes
from tests.test_part5a_sae_architectures_checkers import _with


def _enc(x, W):
    return torch.einsum("bid,ids->bis", x, W)


def _dec(a, W):
    return torch.einsum("bis,isd->bid", a, W)


def _gated_cut(cut):
    def forward(self, h):
        proj = _enc(h - (self.b_dec.detach() if cut == "enc" else self.b_dec), self.W_enc)
        gate = proj + self.b_enc
        mag = (proj.detach() if cut == "mag" else proj) * self.r_mag.exp() + self.b_mag
        acts = (gate > 0).to(h.dtype) * F.relu(mag)
        h_rec = _dec(acts, self.W_dec_normalized) + self.b_dec
        via = _dec(F.relu(gate), self.W_dec_normalized.detach()) + self.b_dec.detach()
        d = {
            "L_reconstruction": (h_rec - h).pow(2).mean(-1),
            "L_sparsity": F.relu(gate).sum(-1),
            "L_aux": (via - h).pow(2).mean(-1),
        }
        per = d["L_reconstruction"] + self.sparsity_coeff * d["L_sparsity"] + d["L_aux"]
        return d, per.mean(0).sum(), acts, h_rec

    return _with(A.GatedToySAE, forward=forward)


def _topk(mode):
    def forward(self, h):
        b_dec = self.b_dec.detach() if mode == "enc_detached" else self.b_dec
        pre = F.relu(_enc(h - b_dec, self.W_enc) + self.b_enc)
        k = self.cfg.k
        if mode == "batch":  # the k·batch largest of each instance over the batch and the latents together
            flat = pre.transpose(0, 1).flatten(1)
            top = flat.topk(k * pre.shape[0], dim=-1)
            acts = torch.zeros_like(flat).scatter(-1, top.indices, top.values).view(pre.shape[1], *pre.shape[::2])
            acts = acts.transpose(0, 1)
        else:
            top = pre.topk(k, dim=-1)
            acts = torch.zeros_like(pre).scatter(-1, top.indices, top.values)
        h_rec = _dec(acts, self.W_dec_normalized) + self.b_dec
        count = (acts > 0).to(h.dtype).sum(-1)
        sp = {"per_k": count / k, "batch_mean": count.mean(0)}.get(mode, count)
        d = {"L_reconstruction": (h_rec - h).pow(2).mean(-1), "L_sparsity": sp}
        return d, d["L_reconstruction"].mean(0).sum(), acts, h_rec

    return _with(A.TopKToySAE, forward=forward)


def test_detached_paths():
    failure = assert_fails(C.test_gated_forward, _gated_cut("enc"), "detached_enc_b_dec")
    assert "b_dec.detach()" in failure.hint
    failure = assert_fails(C.test_gated_forward, _gated_cut("mag"), "detached_mag_proj")
    assert "magnitude path" in failure.hint
    assert_fails(C.test_topk_forward, _topk("enc_detached"), "detached_enc_b_dec")


@pytest.mark.parametrize(
    ("mode", "code"),
    [("batch", "batch_topk"), ("per_k", "sparsity_scaled_by_size"), ("batch_mean", "sparsity_batch_reduced")],
)
def test_topk_readings(mode, code):
    assert_fails(C.test_topk_forward, _topk(mode), code)


class _HeavisideMarked(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, threshold, bandwidth):
        ctx.save_for_backward(x, threshold)
        ctx.bandwidth = bandwidth
        out = (x > threshold).to(x.dtype)
        ctx.mark_non_differentiable(out)
        return out

    @staticmethod
    def backward(ctx, g):
        x, th = ctx.saved_tensors
        return torch.zeros_like(x), -A.rectangle((x - th) / ctx.bandwidth) / ctx.bandwidth * g, None


def test_marked_non_differentiable():
    failure = assert_fails(C.test_heaviside, _HeavisideMarked, "no_grad")
    assert "mark_non_differentiable" in failure.hint


def _fve_uncentred_per_dim(h, r):
    return (1 - (h - r).pow(2).sum(0) / h.pow(2).sum(0)).mean(-1)


def _cos(Wf, Wd):
    return torch.einsum("isd,idf->isf", F.normalize(Wd, dim=-1), F.normalize(Wf, dim=1))


def test_metric_forms():
    failure = assert_fails(C.test_fraction_variance_explained, _fve_uncentred_per_dim, "fve_slips")
    assert "not centred" in failure.hint and "per d_in" in failure.hint
    assert_fails(C.test_feature_recovery, lambda Wf, Wd: _cos(Wf, Wd).max(dim=1), "values_and_indices")
    assert_fails(C.test_feature_recovery, lambda Wf, Wd: _cos(Wf, Wd).topk(1, dim=1).values, "latent_axis_kept")


# correct variants of the round
class _HeavisideTorch(torch.autograd.Function):
    """torch.heaviside forward, inputs kept on ctx, None for x where it needs no gradient, a symmetric kernel."""

    @staticmethod
    def forward(ctx, x, threshold, bandwidth):
        ctx.x, ctx.th, ctx.bw = x, threshold, bandwidth
        return torch.heaviside(x - threshold, torch.zeros_like(x))

    @staticmethod
    def backward(ctx, g):
        inside = ((ctx.th - ctx.x) / ctx.bw).abs() <= 0.5
        return torch.zeros_like(ctx.x) if ctx.needs_input_grad[0] else None, -inside.to(g.dtype) * g / ctx.bw, None


class _JumpReLUOutMask(torch.autograd.Function):
    """The x-gradient's mask read from the saved output (out != 0)."""

    @staticmethod
    def forward(ctx, x, threshold, bandwidth):
        out = x * (x > threshold).to(x.dtype)
        ctx.save_for_backward(x, threshold, out)
        ctx.bandwidth = bandwidth
        return out

    @staticmethod
    def backward(ctx, g):
        x, th, out = ctx.saved_tensors
        bw = ctx.bandwidth
        return (out != 0).to(g.dtype) * g, -(th / bw) * A.rectangle((x - th) / bw) * g, None


def _auxk_tensor_where(pre, residual, dead, W, k_aux):
    top = pre.where(dead, torch.tensor(float("-inf"))).topk(k_aux, dim=-1)
    acts = pre.new_zeros(pre.shape).scatter(-1, top.indices, top.values.nan_to_num(neginf=0.0))
    return (residual - _dec(acts, W)).pow(2).mean(-1)


def test_correct_variants():
    assert_passes(C.test_heaviside, _HeavisideTorch)
    assert_passes(C.test_jumprelu, _JumpReLUOutMask)
    assert_passes(C.test_auxk_loss, _auxk_tensor_where)
