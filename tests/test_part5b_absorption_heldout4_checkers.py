"""Proofs for the part 5b checkers from the fresh13 held-out trial (the others are in
test_part5b_absorption_checkers.py and ..._heldout*_checkers.py)."""

from __future__ import annotations

import einops
import pytest
import torch
import torch.nn.functional as F

import solutions.part5b_absorption as P
import tests.part5b_absorption as checks
from tests.proving import assert_fails


def _generate_bins_of_p_parent(cfg, batch_size, device="cpu"):
    shape = (batch_size, cfg.n_inst, cfg.n_parents)
    parents = torch.rand(shape, device=device) < cfg.p_parent
    if cfg.exclusive:
        u = torch.rand(*shape, 1, device=device)
        edges = torch.arange(1, cfg.n_children + 1, device=device) * cfg.p_parent  # the wrong field's width
        children = (u >= edges).sum(-1, keepdim=True) == torch.arange(cfg.n_children, device=device)
    else:
        children = torch.rand(*shape, cfg.n_children, device=device) < cfg.p_child
    children = children & parents.unsqueeze(-1)
    return torch.cat([parents, children.flatten(-2)], dim=-1).float()


def test_generate_bins_of_p_parent_fresh13():
    assert_fails(checks.test_generate_hierarchical_batch, _generate_bins_of_p_parent, "bins_of_p_parent")


def _absorption_stale_parent(features, acts, W_dec, W_features, parent_of, cos_threshold=0.3):
    parents = [i for i, q in enumerate(parent_of) if q == -1]
    out = torch.zeros(acts.shape[1], len(parents), dtype=acts.dtype, device=acts.device)
    for j, p in enumerate(parents):
        kids = [i for i, q in enumerate(parent_of) if q == p]
        for i in range(acts.shape[1]):
            cos = F.cosine_similarity(W_dec[i], W_features[i][:, parents[0]][None, :], dim=-1)  # stale: parents[0]
            lat = int(cos.argmax())
            case = (features[:, i, p] > 0) & (features[:, i, kids] > 0).any(-1)
            if case.sum() == 0:
                continue
            a = acts[case, i]
            others = cos >= cos_threshold
            others[lat] = False
            out[i, j] = ((a[:, lat] == 0) & (a[:, others] > 0).any(-1)).float().mean()
    return out


def test_absorption_stale_parent_fresh13():
    assert_fails(checks.test_absorption_fraction, _absorption_stale_parent, "stale_parent")


def _batch_topk_best_kept(pre, k):
    batch = pre.shape[0]
    flat = einops.rearrange(pre, "b i s -> i (b s)")
    cut = flat.topk(k * batch, dim=-1).values[:, -1:]
    mask = einops.rearrange(flat >= cut, "i (b s) -> b i s", b=batch) | (pre == pre.amax(-1, keepdim=True))
    return torch.where(mask, pre, torch.zeros_like(pre))


def test_batch_topk_best_per_example_fresh13():
    assert_fails(checks.test_batch_topk, _batch_topk_best_kept, "best_per_example")


class _MomentumTwice(P.BatchTopKToySAE):
    def encode(self, h):
        pre = torch.relu(torch.einsum("bid,ids->bis", h - self.b_dec, self.W_enc) + self.b_enc)
        if not self.training:
            return torch.where(pre > self.threshold.view(1, -1, 1), pre, 0.0)
        acts = P.batch_topk(pre, self.cfg.k)
        with torch.no_grad():
            mins = acts.masked_fill(acts <= 0, float("inf")).transpose(0, 1).reshape(acts.shape[1], -1).min(-1).values
            ok = torch.isfinite(mins)
            m = self.THRESHOLD_MOMENTUM
            new = self.threshold * (1 - m) + m * mins * (1 - m)
            self.threshold[ok] = new[ok]
        return acts


def test_batchtopk_encode_momentum_twice_fresh13():
    assert_fails(checks.test_batchtopk_encode, _MomentumTwice, "ema_momentum_twice")


def _matryoshka(bug):
    def matryoshka_loss(acts, W_dec_normalized, b_dec, h, prefix_sizes):
        total = 0
        for m in prefix_sizes:
            if bug == "after_prefix":
                a, W = acts[..., m:], W_dec_normalized[:, m:]
            else:
                a, W = acts[..., :m], W_dec_normalized[:, :m]
            rec = torch.einsum("bis,isd->bid", a, W) + b_dec
            loss = (rec - h).pow(2).mean(-1)
            if bug == "return_in_loop":
                return loss
            if bug == "mean_over_instances":
                loss = (rec - h).pow(2).mean((-2, -1))[:, None].expand_as(loss)
            total = total + loss
        return total

    return matryoshka_loss


@pytest.mark.parametrize(
    "bug, code",
    [
        ("return_in_loop", "one_prefix_only"),
        ("after_prefix", "after_prefix"),
        ("mean_over_instances", "mean_over_instances"),
    ],
)
def test_matryoshka_fresh13(bug, code):
    assert_fails(checks.test_matryoshka_loss, _matryoshka(bug), code)
