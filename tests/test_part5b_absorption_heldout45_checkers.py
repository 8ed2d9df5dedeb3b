"""Proofs for section 5b (round AT): BatchTopKToySAE.encode with the threshold update gated by a condition stricter
than "this instance kept something" is named as a gate (every latent fired) or listed (every example kept something,
where no threshold moves); the update whose empty minimum's inf is replaced by 0 lists that cause next to the top-k
cut (they give the same values on the checker's batch); and the round's correct variants pass."""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import solutions.part5b_absorption as sol
import tests.part5b_absorption as checks
from tests.proving import assert_fails, assert_passes


def _pre(sae, h):
    return F.relu(einops.einsum(h - sae.b_dec, sae.W_enc, "b i d, i d s -> b i s") + sae.b_enc)


class _GateAllLatents(sol.BatchTopKToySAE):
    def encode(self, h):
        pre = _pre(self, h)
        if not self.training:
            return pre * (pre > self.threshold[:, None])
        acts = sol.batch_topk(pre, self.cfg.k)
        with torch.no_grad():
            pos = acts > 0
            m = torch.where(pos, acts, torch.inf).amin(dim=(0, 2))
            has_any = pos.any(0).all(-1)  # requires every latent to have fired
            upd = self.threshold + self.THRESHOLD_MOMENTUM * (m - self.threshold)
            self.threshold.copy_(torch.where(has_any, upd, self.threshold))
        return acts


class _GateAllExamples(sol.BatchTopKToySAE):
    def encode(self, h):
        pre = _pre(self, h)
        if not self.training:
            return pre * (pre > self.threshold[:, None])
        acts = sol.batch_topk(pre, self.cfg.k)
        with torch.no_grad():
            pos = acts > 0
            m = torch.where(pos, acts, torch.inf).amin(dim=(0, 2))
            has_any = pos.any(-1).all(0)  # requires every example to have kept something
            upd = self.threshold + self.THRESHOLD_MOMENTUM * (m - self.threshold)
            self.threshold.copy_(torch.where(has_any, upd, self.threshold))
        return acts


class _InfToZero(sol.BatchTopKToySAE):
    def encode(self, h):
        pre = _pre(self, h)
        if not self.training:
            return pre * (pre > self.threshold[:, None])
        acts = sol.batch_topk(pre, self.cfg.k)
        with torch.no_grad():
            m = torch.where(acts > 0, acts, torch.inf).amin(dim=(0, 2))
            m = torch.nan_to_num(m, posinf=0.0)  # an empty instance now decays toward 0
            self.threshold.lerp_(m, self.THRESHOLD_MOMENTUM)
        return acts


class _LoopInst(sol.BatchTopKToySAE):  # correct
    def encode(self, h):
        pre = (
            einops.einsum(h, self.W_enc, "b i d, i d s -> b i s")
            - einops.einsum(self.b_dec, self.W_enc, "i d, i d s -> i s")
            + self.b_enc
        ).clamp(min=0)
        if not self.training:
            return torch.where(pre > self.threshold.view(1, -1, 1), pre, torch.zeros_like(pre))
        acts = sol.batch_topk(pre, self.cfg.k)
        with torch.no_grad():
            for i in range(acts.shape[1]):
                pos = acts[:, i][acts[:, i] > 0]
                if pos.numel():
                    mom = self.THRESHOLD_MOMENTUM
                    self.threshold[i] = (1 - mom) * self.threshold[i] + mom * pos.min()
        return acts


def test_gate_every_latent_is_named():
    failure = assert_fails(checks.test_batchtopk_encode, _GateAllLatents, code="threshold_gate")
    assert "pos.any(0).all(-1)" in str(failure)


def test_gate_every_example_is_listed():
    # here no instance has every example keeping something: no threshold moves, which that hint lists
    failure = assert_fails(checks.test_batchtopk_encode, _GateAllExamples, code="threshold_not_updated")
    assert "every example kept something" in str(failure)


def test_inf_replaced_by_zero_is_listed():
    failure = assert_fails(checks.test_batchtopk_encode, _InfToZero, code="threshold_cut_value")
    assert "nan_to_num" in str(failure)


def test_loop_over_instances_passes():
    assert_passes(checks.test_batchtopk_encode, _LoopInst)


def test_floor_one_hot_passes():
    def generate_hierarchical_batch(cfg, batch_size, device="cpu"):
        shape = (batch_size, cfg.n_inst, cfg.n_parents)
        parents = torch.rand(shape, device=device) < cfg.p_parent
        if cfg.exclusive:
            u = torch.rand(shape, device=device)
            if cfg.p_child > 0:
                idx = torch.floor(u / cfg.p_child).long().clamp(max=cfg.n_children)
            else:
                idx = torch.full(shape, cfg.n_children, device=device)
            children = F.one_hot(idx, cfg.n_children + 1)[..., : cfg.n_children].bool()
        else:
            children = torch.rand(*shape, cfg.n_children, device=device) < cfg.p_child
        children = children & parents[..., None]
        return torch.cat([parents, children.reshape(*shape[:2], -1)], dim=-1).float()

    assert_passes(checks.test_generate_hierarchical_batch, generate_hierarchical_batch)


def test_parent_latent_kept_among_carriers_passes():
    def absorption_fraction(features, acts, W_dec, W_features, parent_of, cos_threshold=0.3):
        Wd = W_dec / (W_dec.norm(dim=-1, keepdim=True) + 1e-8)
        Wf = W_features / (W_features.norm(dim=1, keepdim=True) + 1e-8)
        cos = einops.einsum(Wd, Wf, "inst d_sae d_in, inst d_in feats -> inst d_sae feats")
        out, n = [], acts.shape[1]
        for p in [f for f, q in enumerate(parent_of) if q == -1]:
            kids = [f for f, q in enumerate(parent_of) if q == p]
            cases = (features[..., p] > 0) & (features[..., kids] > 0).any(-1)
            c = cos[:, :, p]
            lat = c.argmax(-1)
            carriers = c >= cos_threshold  # the parent latent stays: it is off in every counted example
            off = acts[:, torch.arange(n), lat] == 0
            absorbed = cases & off & ((acts > 0) & carriers).any(-1)
            out.append(absorbed.sum(0) / cases.sum(0).clamp_min(1))
        return torch.stack(out, -1).to(acts.dtype)

    assert_passes(checks.test_absorption_fraction, absorption_fraction)


def test_sort_mask_topk_passes():
    def batch_topk(pre, k):
        b, i, s = pre.shape
        flat = pre.permute(1, 0, 2).reshape(i, -1)
        order = flat.argsort(dim=-1, descending=True)[:, : k * b]
        mask = torch.zeros_like(flat, dtype=torch.bool).scatter(-1, order, True)
        return torch.where(mask, flat, torch.zeros_like(flat)).reshape(i, b, s).permute(1, 0, 2)

    assert_passes(checks.test_batch_topk, batch_topk)


def test_cumsum_matryoshka_passes():
    def matryoshka_loss(acts, W, b_dec, h, prefix_sizes):
        cum = (acts[..., None] * W[None]).cumsum(2)  # [b i s d]
        return sum(((cum[:, :, m - 1] + b_dec) - h).pow(2).mean(-1) for m in prefix_sizes)

    assert_passes(checks.test_matryoshka_loss, matryoshka_loss)
