"""Proofs for section 5b (round AQ): a parent column cleared where a child fires, a childless parent skipped,
batch_topk's negatives ranked as equal / cut at the largest kept value / capped per example, encode's ReLU
before + b_enc and tied encoder weights, matryoshka_loss editing W_dec_normalized in place or taking a variance."""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import solutions.part5b_absorption as sol
import tests.part5b_absorption as checks
from tests.proving import assert_fails


def test_parent_cleared_where_a_child_fires_is_named():
    def generate_hierarchical_batch(cfg, batch_size, device="cpu"):
        out = sol.generate_hierarchical_batch(cfg, batch_size, device)
        kids = out[..., cfg.n_parents :].unflatten(-1, (cfg.n_parents, cfg.n_children)).amax(-1)
        out[..., : cfg.n_parents] *= 1 - kids
        return out

    failure = assert_fails(checks.test_generate_hierarchical_batch, generate_hierarchical_batch, code="parent_cleared")
    assert "switched off" in failure.message


def test_childless_parent_skipped_is_named():
    def absorption_fraction(features, acts, W_dec, W_features, parent_of, cos_threshold=0.3):
        out = sol.absorption_fraction(features, acts, W_dec, W_features, parent_of, cos_threshold)
        parents = [f for f, q in enumerate(parent_of) if q == -1]
        keep = [j for j, p in enumerate(parents) if p in set(parent_of) - {-1}]
        return out[:, keep]

    assert_fails(checks.test_absorption_fraction, absorption_fraction, code="childless_parent")


def _flat_topk(pre, k, rank):
    b = pre.shape[0]
    flat = einops.rearrange(pre, "b i s -> i (b s)")
    idx = rank(flat).topk(k * b, dim=-1).indices
    kept = torch.zeros_like(flat).scatter(-1, idx, flat.gather(-1, idx))
    return einops.rearrange(kept, "i (b s) -> b i s", b=b)


def test_batch_topk_ranked_on_relu_is_named():
    assert_fails(checks.test_batch_topk, lambda pre, k: _flat_topk(pre, k, F.relu), code="negatives_unranked")


def test_batch_topk_cut_at_the_largest_is_named():
    def batch_topk(pre, k):
        flat = einops.rearrange(pre, "b i s -> i (b s)")
        cut = flat.topk(k * pre.shape[0], dim=-1).values[:, :1]
        return einops.rearrange(torch.where(flat >= cut, flat, 0.0), "i (b s) -> b i s", b=pre.shape[0])

    assert_fails(checks.test_batch_topk, batch_topk, code="cut_largest")


def test_batch_topk_capped_per_example_is_named():
    def batch_topk(pre, k):
        out = sol.batch_topk(pre, k)
        top = out.topk(min(k, out.shape[-1]), dim=-1)
        return torch.zeros_like(out).scatter(-1, top.indices, top.values)

    assert_fails(checks.test_batch_topk, batch_topk, code="per_example_cap")


def _finish(self, pre):
    if not self.training:
        return pre * (pre > self.threshold[:, None])
    acts = sol.batch_topk(pre, self.cfg.k)
    with torch.no_grad():
        pos = acts > 0
        mk = torch.where(pos, acts, torch.inf).amin(dim=(0, 2))
        upd = self.threshold + self.THRESHOLD_MOMENTUM * (mk - self.threshold)
        self.threshold.copy_(torch.where(pos.any(0).any(-1), upd, self.threshold))
    return acts


class _ReluBeforeBias(sol.BatchTopKToySAE):
    def encode(self, h):
        return _finish(self, F.relu(torch.einsum("bid,ids->bis", h - self.b_dec, self.W_enc)) + self.b_enc)


class _Tied(sol.BatchTopKToySAE):
    def encode(self, h):
        W = self.W_dec_normalized.transpose(-1, -2)
        return _finish(self, F.relu(torch.einsum("bid,ids->bis", h - self.b_dec, W) + self.b_enc))


def test_encode_relu_before_bias_is_named():
    failure = assert_fails(checks.test_batchtopk_encode, _ReluBeforeBias, code="no_relu")
    assert "BEFORE adding b_enc" in failure.hint


def test_encode_tied_weights_is_named():
    assert_fails(checks.test_batchtopk_encode, _Tied, code="tied_encoder")


def test_matryoshka_decoder_zeroed_in_place_is_named():
    def matryoshka_loss(acts, W, b_dec, h, prefix_sizes):
        total = 0
        for m in prefix_sizes:
            with torch.no_grad():
                W[:, m:] = 0
            total = total + (torch.einsum("bis,isd->bid", acts, W) + b_dec - h).pow(2).mean(-1)
        return total

    failure = assert_fails(checks.test_matryoshka_loss, matryoshka_loss, code="in_place")
    assert "W_dec_normalized" in failure.message


def test_matryoshka_variance_is_named():
    def matryoshka_loss(acts, W, b_dec, h, prefix_sizes):
        rec = lambda m: torch.einsum("bim,imd->bid", acts[..., :m], W[:, :m]) + b_dec
        return sum((rec(m) - h).var(-1) for m in prefix_sizes)

    assert_fails(checks.test_matryoshka_loss, matryoshka_loss, code="error_variance")
