"""Proofs for section 5b (round AU): absorption_fraction with its cases read as a count of the family's active
features (parent + children > 1) is named on examples where two children fire with the parent off (an allowed input:
the hand-built case already has a child without its parent; the features are binary, so non-binary inputs are not
added); BatchTopKToySAE.encode keeping an activation EQUAL to the eval threshold is named on exact (dyadic) ties; and
the round's correct variants pass."""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import solutions.part5b_absorption as sol
import tests.part5b_absorption as checks
from tests.proving import assert_fails, assert_passes


def _cos(W_dec, W_features):
    a = W_dec / (W_dec.norm(dim=-1, keepdim=True) + 1e-8)
    b = W_features / (W_features.norm(dim=1, keepdim=True) + 1e-8)
    return einops.einsum(a, b, "inst d_sae d_in, inst d_in feats -> inst d_sae feats")


def _cases_feature_sum(features, acts, W_dec, W_features, parent_of, cos_threshold=0.3):
    cos = _cos(W_dec, W_features)
    out = []
    for p in [f for f, q in enumerate(parent_of) if q == -1]:
        ch = [f for f, q in enumerate(parent_of) if q == p]
        cases = (features[..., p] + features[..., ch].sum(-1)) > 1  # a count of the family's active features
        pl = cos[:, :, p].argmax(-1)
        carriers = cos[:, :, p] >= cos_threshold
        carriers[torch.arange(len(pl)), pl] = False
        parent_off = acts.gather(-1, pl.expand(acts.shape[0], -1).unsqueeze(-1)).squeeze(-1) == 0
        carried = ((acts > 0) & carriers).any(-1)
        out.append((cases & parent_off & carried).sum(0) / cases.sum(0).clamp_min(1))
    return torch.stack(out, -1).to(acts.dtype)


def _nan_to_num_diag(features, acts, W_dec, W_features, parent_of, cos_threshold=0.3):  # correct
    cos = _cos(W_dec, W_features)
    n_inst = acts.shape[1]
    parents = [f for f, q in enumerate(parent_of) if q == -1]
    out = torch.zeros(n_inst, len(parents), dtype=acts.dtype)
    for j, p in enumerate(parents):
        ch = [f for f, q in enumerate(parent_of) if q == p]
        cases = (features[..., p] > 0) & (features[..., ch] > 0).amax(-1)
        pl = cos[:, :, p].argmax(-1)
        others = (cos[:, :, p] >= cos_threshold) & (torch.arange(cos.shape[1])[None] != pl[:, None])
        parent_off = acts[:, :, pl].diagonal(dim1=1, dim2=2) <= 0
        carried = (acts * others).amax(-1) > 0
        frac = (cases & parent_off & carried).double().mean(0) / cases.double().mean(0)
        out[:, j] = torch.nan_to_num(frac, nan=0.0).to(acts.dtype)
    return out.to(acts.device)


class _EvalNonStrict(sol.BatchTopKToySAE):
    def encode(self, h):
        pre = einops.einsum(h - self.b_dec, self.W_enc, "b i d, i d s -> b i s")
        pre = F.relu(pre + self.b_enc)
        if not self.training:
            return torch.where(pre >= self.threshold[:, None], pre, 0.0)  # >= instead of >
        acts = sol.batch_topk(pre, self.cfg.k)
        with torch.no_grad():
            positive = acts > 0
            mn = torch.where(positive, acts, torch.inf).amin(dim=(0, 2))
            upd = self.threshold + self.THRESHOLD_MOMENTUM * (mn - self.threshold)
            self.threshold.copy_(torch.where(positive.any(0).any(-1), upd, self.threshold))
        return acts


class _Lerp(sol.BatchTopKToySAE):  # correct
    def encode(self, h):
        pre = torch.relu(torch.einsum("bid,ids->bis", h - self.b_dec, self.W_enc) + self.b_enc)
        if not self.training:
            return torch.where(pre > self.threshold.view(1, -1, 1), pre, torch.zeros_like(pre))
        acts = sol.batch_topk(pre, self.cfg.k)
        with torch.no_grad():
            flat = acts.detach().transpose(0, 1).reshape(acts.shape[1], -1)
            big = flat.masked_fill(flat <= 0, float("inf")).min(-1).values
            ok = torch.isfinite(big)
            new = torch.lerp(self.threshold, big.where(ok, self.threshold), self.THRESHOLD_MOMENTUM)
            self.threshold[ok] = new[ok]
        return acts


def test_cases_as_feature_count_is_named():
    failure = assert_fails(checks.test_absorption_fraction, _cases_feature_sum, code="cases_by_count")
    assert "parent OFF" in failure.message and "features[p] + the sum of its children" in failure.message


def test_nan_to_num_diagonal_passes():
    assert_passes(checks.test_absorption_fraction, _nan_to_num_diag)


def test_lerp_masked_encode_passes():
    assert_passes(checks.test_batchtopk_encode, _Lerp)


def test_bucketize_one_hot_passes():
    def generate_hierarchical_batch(cfg, batch_size, device="cpu"):
        shape = (batch_size, cfg.n_inst, cfg.n_parents)
        parents = torch.rand(shape, device=device) < cfg.p_parent
        if cfg.exclusive:
            u = torch.rand(shape, device=device)
            edges = torch.arange(1, cfg.n_children + 1, device=device, dtype=u.dtype) * cfg.p_child
            idx = torch.bucketize(u, edges, right=True)
            children = F.one_hot(idx.clamp(max=cfg.n_children), cfg.n_children + 1)[..., :-1].bool()
        else:
            children = torch.rand(*shape, cfg.n_children, device=device) < cfg.p_child
        children = children & parents[..., None]
        out = torch.zeros(batch_size, cfg.n_inst, cfg.n_parents * (1 + cfg.n_children), device=device)
        out[..., : cfg.n_parents] = parents.float()
        out[..., cfg.n_parents :] = children.reshape(batch_size, cfg.n_inst, -1).float()
        return out

    assert_passes(checks.test_generate_hierarchical_batch, generate_hierarchical_batch)


def test_loop_stable_argsort_topk_passes():
    def batch_topk(pre, k):
        out = torch.zeros_like(pre)
        b = pre.shape[0]
        for i in range(pre.shape[1]):
            x = pre[:, i].flatten()
            order = torch.argsort(x, descending=True, stable=True)[: k * b]
            m = torch.zeros_like(x, dtype=torch.bool)
            m[order] = True
            out[:, i] = torch.where(m, x, torch.zeros_like(x)).view(b, -1)
        return out

    assert_passes(checks.test_batch_topk, batch_topk)


def test_mask_arange_matryoshka_passes():
    def matryoshka_loss(acts, W, b_dec, h, prefix_sizes):
        idx = torch.arange(acts.shape[-1], device=acts.device)
        losses = []
        for m in prefix_sizes:
            masked = acts * (idx < m)
            rec = (masked.unsqueeze(-1) * W.unsqueeze(0)).sum(-2) + b_dec
            losses.append(((rec - h) ** 2).sum(-1) / h.shape[-1])
        return torch.stack(losses).sum(0)

    assert_passes(checks.test_matryoshka_loss, matryoshka_loss)
