"""Audit of part 5a's cause-naming readings (after fresh45-47). The TopK `k_ignored` reading used to ask "is k
hard-coded, or read from another field (aux_k, d_in)? or is the cut-off the largest value?" from one statistic (the
same count kept with cfg.k = 2 and 3). It now reads back: a fixed k is named only when the reference with that k
reproduces acts_post, the top-1 cut-off only when that k is 1, and otherwise the hint says no fixed k reproduces the
output. The past misleading trials (a k from the data, instance 0's thresholds for every instance, a dead mask
pooled over instances) keep their named codes."""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import solutions.part5a_sae_architectures as S
import tests.part5a_sae_architectures as C
from tests.proving import assert_fails


def _enc(x, W):
    return einops.einsum(x, W, "b i d, i d s -> b i s")


def _dec(a, W):
    return einops.einsum(a, W, "b i s, i s d -> b i d")


def _topk(keep):
    """A TopK forward whose kept latents and values come from keep(pre_after_relu, cfg.k) -> acts_post."""

    def forward(self, h):
        pre = F.relu(_enc(h - self.b_dec, self.W_enc) + self.b_enc)
        acts = keep(pre, self.cfg.k)
        h_rec = _dec(acts, self.W_dec_normalized) + self.b_dec
        rec = (h_rec - h).pow(2).mean(-1)
        return {"L_reconstruction": rec, "L_sparsity": (acts != 0).to(h.dtype).sum(-1)}, rec.mean(0).sum(), acts, h_rec

    return type("TopK", (S.TopKToySAE,), {"forward": forward})


def _fixed(n):
    def keep(pre, k):
        top = pre.topk(n, dim=-1)
        return torch.zeros_like(pre).scatter(-1, top.indices, top.values)

    return keep


# ---------------- the k_ignored reading: named only by read-back ----------------
def test_topk_k_fixed_at_two_is_read_back():
    failure = assert_fails(C.test_topk_forward, _topk(_fixed(2)), "k_ignored")
    assert "k = 2" in failure.hint and "values[..., :1]" not in failure.hint


def test_topk_k_fixed_at_one_names_the_top1_cut():
    failure = assert_fails(C.test_topk_forward, _topk(_fixed(1)), "k_ignored")
    assert "k = 1" in failure.hint and "values[..., :1]" in failure.hint


def test_topk_one_kept_but_halved_is_not_called_a_fixed_k():
    """Same evidence (one latent kept whatever k) but the kept value is halved: no fixed k reproduces it, so the
    hint names neither a hard-coded k nor the largest-value cut-off."""

    def keep(pre, k):
        top = pre.topk(1, dim=-1)
        return torch.zeros_like(pre).scatter(-1, top.indices, top.values / 2)

    failure = assert_fails(C.test_topk_forward, _topk(keep), "k_ignored")
    assert "no fixed k" in failure.hint
    assert "values[..., :1]" not in failure.hint and "hard-coded" not in failure.hint


def test_topk_smallest_positive_kept_is_not_called_a_fixed_k():
    """One latent kept whatever k, but the smallest positive one, not the largest: no fixed k reproduces it."""

    def keep(pre, k):
        idx = torch.where(pre > 0, pre, torch.full_like(pre, torch.inf)).argmin(-1, keepdim=True)
        return torch.zeros_like(pre).scatter(-1, idx, pre.gather(-1, idx))

    failure = assert_fails(C.test_topk_forward, _topk(keep), "k_ignored")
    assert "no fixed k" in failure.hint and "values[..., :1]" not in failure.hint


# ---------------- past misleading trials (fresh45 tk_k_min_positive, fresh46 jf/ak) ----------------
def test_past_topk_k_min_positive():
    def keep(pre, k):
        top = pre.topk(max(1, min(k, int((pre > 0).sum(-1).min()))), dim=-1)
        return torch.zeros_like(pre).scatter(-1, top.indices, top.values)

    failure = assert_fails(C.test_topk_forward, _topk(keep), "k_from_data")
    assert "hard-coded" not in failure.hint


def test_past_jumprelu_forward_first_instance_theta():
    def forward(self, h):
        pre = _enc(h - self.b_dec, self.W_enc) + self.b_enc
        threshold = self.log_threshold.exp()[0].expand_as(pre)
        bw = self.cfg.jumprelu_bandwidth
        acts = S.JumpReLU.apply(pre, threshold, bw)
        h_rec = _dec(acts, self.W_dec_normalized) + self.b_dec
        ld = {
            "L_reconstruction": (h_rec - h).pow(2).mean(-1),
            "L_sparsity": S.Heaviside.apply(pre, threshold, bw).sum(-1),
        }
        return ld, (ld["L_reconstruction"] + self.sparsity_coeff * ld["L_sparsity"]).mean(0).sum(), acts, h_rec

    failure = assert_fails(
        C.test_jumprelu_forward, type("J", (S.JumpReLUToySAE,), {"forward": forward}), "theta_first_instance"
    )
    assert "a where() whose other branch" not in failure.hint


def test_past_auxk_dead_mask_pooled():
    def auxk_loss(pre, residual, dead, W, k_aux):
        d = dead.any(0, keepdim=True).expand_as(dead)
        top = torch.where(d, pre, -torch.inf).topk(k_aux, dim=-1)
        vals = torch.where(top.values.isfinite(), top.values, torch.zeros_like(top.values))
        return (residual - _dec(torch.zeros_like(pre).scatter(-1, top.indices, vals), W)).pow(2).mean(-1)

    failure = assert_fails(C.test_auxk_loss, auxk_loss, "dead_mask_pooled")
    assert "mask the live ones out before the top-k" not in failure.hint


def test_topk_k_one_when_any_example_is_short_is_not_called_the_fewest():
    """k set by the batch (cfg.k where every example has ≥ k positive), but a guard that drops to 1 whenever some
    example has fewer than k positive, not to the fewest count: the fewest-positive cause is not claimed."""

    def keep(pre, k):
        kk = k if int((pre > 0).sum(-1).min()) >= k else 1
        top = pre.topk(kk, dim=-1)
        return torch.zeros_like(pre).scatter(-1, top.indices, top.values)

    failure = assert_fails(C.test_topk_forward, _topk(keep), "k_from_data")
    assert "lowered to the fewest positive" not in failure.hint and "not min(k" in failure.hint


# ---------------- negative_acts: causes named only by read-back ----------------
def _topk_raw(values_of):
    """A TopK forward keeping the top k of ReLU(pre) at their indices, with values from values_of(pre, proj, b)."""

    def forward(self, h):
        proj = _enc(h - self.b_dec, self.W_enc)
        pre = proj + self.b_enc
        idx = pre.relu().topk(self.cfg.k, dim=-1).indices
        acts = torch.zeros_like(pre).scatter(-1, idx, values_of(pre, proj, self.b_enc).gather(-1, idx))
        h_rec = _dec(acts, self.W_dec_normalized) + self.b_dec
        rec = (h_rec - h).pow(2).mean(-1)
        return {"L_reconstruction": rec, "L_sparsity": (acts != 0).to(h.dtype).sum(-1)}, rec.mean(0).sum(), acts, h_rec

    return type("TopK", (S.TopKToySAE,), {"forward": forward})


def test_topk_values_from_pre_is_read_back():
    failure = assert_fails(C.test_topk_forward, _topk_raw(lambda pre, proj, b: pre), "negative_acts")
    assert "gathered from pre" in failure.hint and "read back" in failure.hint
    assert "and b_enc added after" not in failure.hint


def test_topk_values_shifted_negative_names_no_cause():
    """Negative values at kept positions from another slip (ReLU(pre) - 0.1): neither listed cause reproduces it,
    and 'no ReLU at all' (a recognised mistake of its own) is not offered."""
    failure = assert_fails(C.test_topk_forward, _topk_raw(lambda pre, proj, b: pre.relu() - 0.1), "negative_acts")
    assert "neither" in failure.hint and "no ReLU at all" not in failure.hint


def test_topk_k_from_median_count_gets_the_observation_not_a_bare_kthvalue_claim():
    """k lowered to the batch's median positive count keeps 3 = d_sae - k + 1 at k = 5, exactly what a kthvalue(k)
    cut keeps: the hint states that count (the observation that reproduces) rather than only asserting kthvalue."""

    def keep(pre, k):
        kk = max(1, min(k, int((pre > 0).sum(-1).float().median())))
        top = pre.topk(kk, dim=-1)
        return torch.zeros_like(pre).scatter(-1, top.indices, top.values)

    failure = assert_fails(C.test_topk_forward, _topk(keep), "kthvalue_smallest")
    assert "keeps d_sae-k+1 per example" in failure.hint


# ---------------- JumpReLU at negative thresholds: causes named only by read-back ----------------
def _jumprelu_forward(rule):
    def forward(ctx, x, threshold, bandwidth):
        ctx.save_for_backward(x, threshold)
        ctx.bandwidth = bandwidth
        return x * rule(x, threshold).to(x.dtype)

    return type("JumpReLU", (S.JumpReLU,), {"forward": staticmethod(forward)})


def test_jumprelu_relu_habit_forward_is_read_back():
    failure = assert_fails(
        C.test_jumprelu, _jumprelu_forward(lambda x, th: (x > th) & (x > 0)), "negative_threshold_forward"
    )
    assert "extra `x > 0`" in failure.hint and "read back" in failure.hint


def test_jumprelu_doubled_negative_threshold_names_no_cause():
    """Wrong only at θ < 0 (compares x with 2θ there): none of the ReLU habit, abs(θ) or a clamp reproduces it."""
    rule = lambda x, th: torch.where(th < 0, x > 2 * th, x > th)
    failure = assert_fails(C.test_jumprelu, _jumprelu_forward(rule), "negative_threshold_forward")
    assert "None of" in failure.hint and "Yours equals" not in failure.hint
