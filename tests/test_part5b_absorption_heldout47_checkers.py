"""Proofs for section 5b (round AV): batch_topk writing into the caller's `pre` (masked_fill_) is named as an
in-place edit before any values reading; a budget capped below the number of entries (min(k·batch, n - 1)) is caught
on the full budget k = d_sae; absorption_fraction counting a carrier active only at activation >= cos_threshold is
named; and the round's correct variants pass."""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import tests.part5b_absorption as checks
from solutions.part5b_absorption import BatchTopKToySAE
from solutions.part5b_absorption import batch_topk as ref_batch_topk
from tests.proving import assert_fails, assert_passes


def _topk_budget_capped_below_numel(pre, k):
    b = pre.shape[0]
    flat = einops.rearrange(pre, "b i d -> i (b d)")
    n = min(k * b, flat.shape[-1] - 1)  # "guard" against topk out of range, off by one
    top = flat.topk(n, dim=-1)
    kept = torch.zeros_like(flat).scatter(-1, top.indices, top.values)
    return einops.rearrange(kept, "i (b d) -> b i d", b=b)


def _topk_masked_fill_inplace(pre, k):
    b = pre.shape[0]
    flat = einops.rearrange(pre, "b i d -> i (b d)")
    idx = flat.topk(k * b, dim=-1).indices
    keep = torch.zeros_like(flat, dtype=torch.bool).scatter(-1, idx, True)
    keep = einops.rearrange(keep, "i (b d) -> b i d", b=b)
    with torch.no_grad():
        pre.masked_fill_(~keep, 0)  # writes into the caller's tensor
    return pre


def _topk_dsae_major_correct(pre, k):
    b = pre.shape[0]
    flat = einops.rearrange(pre, "b i d -> i (d b)")
    idx = flat.topk(k * b, dim=-1).indices
    mask = torch.zeros_like(flat, dtype=torch.bool).scatter(-1, idx, True)
    return einops.rearrange(flat * mask, "i (d b) -> b i d", b=b)


def _abs_activity_vs_cos_threshold(f, a, Wd, Wf, po, cos_threshold=0.3):
    Wd_hat = Wd / (Wd.norm(dim=-1, keepdim=True) + 1e-8)
    Wf_hat = Wf / (Wf.norm(dim=1, keepdim=True) + 1e-8)
    cos = einops.einsum(Wd_hat, Wf_hat, "inst d_sae d_in, inst d_in feats -> inst d_sae feats")
    fr = []
    for p in [i for i, q in enumerate(po) if q == -1]:
        ch = [i for i, q in enumerate(po) if q == p]
        cases = (f[..., p] > 0) & (f[..., ch] > 0).any(-1)
        pl = cos[:, :, p].argmax(-1)
        carriers = cos[:, :, p] >= cos_threshold
        carriers[torch.arange(len(pl)), pl] = False
        off = a.gather(-1, pl.expand(a.shape[0], -1).unsqueeze(-1)).squeeze(-1) == 0
        carried = ((a >= cos_threshold) & carriers).any(-1)  # the cosine threshold applied to activations
        fr.append((cases & off & carried).sum(0) / cases.sum(0).clamp_min(1))
    return torch.stack(fr, dim=-1).to(a.dtype)


def _abs_onehot_bmm_correct(f, a, Wd, Wf, po, cos_threshold=0.3):
    cos = torch.bmm(F.normalize(Wd, dim=-1), F.normalize(Wf, dim=1))  # [inst d_sae feats]
    po_t = torch.tensor(po)
    out = []
    for p in (po_t == -1).nonzero().flatten().tolist():
        child_mask = (po_t == p).to(f.device)
        cases = (f[..., p] > 0) & ((f > 0) & child_mask).any(-1)
        onehot = F.one_hot(cos[:, :, p].argmax(-1), Wd.shape[1]).bool()
        carriers = (cos[:, :, p] >= cos_threshold) & ~onehot
        absorbed = cases & ((a * onehot).sum(-1) <= 0) & ((a > 0) & carriers).any(-1)
        n = cases.float().sum(0)
        out.append(torch.where(n > 0, absorbed.float().sum(0) / n.clamp(min=1), 0.0))
    return torch.stack(out, -1).to(a.dtype)


def _gen_floor_index_correct(cfg, batch_size, device="cpu"):
    B, n_i, P, C = batch_size, cfg.n_inst, cfg.n_parents, cfg.n_children
    parents = (torch.rand(B, n_i, P, device=device) < cfg.p_parent).float()
    if cfg.exclusive:
        idx = (torch.rand(B, n_i, P, device=device) / cfg.p_child).floor().long()  # >= C: no child
        children = F.one_hot(idx.clamp(max=C), C + 1)[..., :C].float()
    else:
        children = torch.bernoulli(torch.full((B, n_i, P, C), cfg.p_child, device=device))
    children = children * parents[..., None]
    out = torch.zeros(B, n_i, P + P * C, device=device)
    out[..., :P] = parents
    out[..., P:] = children.reshape(B, n_i, P * C)
    return out


class _EncReluAfterTopkCorrect(BatchTopKToySAE):
    def encode(self, h):
        pre = torch.einsum("bid,ids->bis", h - self.b_dec, self.W_enc) + self.b_enc
        if not self.training:
            r = pre.clamp(min=0)
            return torch.where(r > self.threshold.view(1, -1, 1), r, torch.zeros_like(r))
        acts = ref_batch_topk(pre, self.cfg.k).clamp(min=0)
        with torch.no_grad():
            for i in range(acts.shape[1]):
                v = acts[:, i][acts[:, i] > 0]
                if v.numel():
                    self.threshold[i] += self.THRESHOLD_MOMENTUM * (v.min() - self.threshold[i])
        return acts


def _mat_centred_target_correct(acts, W, b_dec, h, prefix_sizes):
    target = h - b_dec[None]
    out = 0
    for m in sorted(prefix_sizes):
        rec = torch.einsum("bim,imd->bid", acts[:, :, :m], W[:, :m, :])
        out = out + ((target - rec) ** 2).sum(-1) / h.shape[-1]
    return out


def test_budget_capped_below_numel_caught_on_full_budget():
    failure = assert_fails(checks.test_batch_topk, _topk_budget_capped_below_numel, "full_budget")
    assert "min(k·batch, n - 1)" in failure.hint and "the smallest of their instance" in str(failure)


def test_masked_fill_inplace_named_in_place():
    failure = assert_fails(checks.test_batch_topk, _topk_masked_fill_inplace, "in_place")
    assert "changed its input `pre` in place" in str(failure) and "masked_fill_" in failure.hint


def test_activity_vs_cos_threshold_named():
    failure = assert_fails(checks.test_absorption_fraction, _abs_activity_vs_cos_threshold, "activity_level")
    assert "activation is >= cos_threshold" in failure.hint and "> 0" in failure.hint


def test_round_correct_variants_pass():
    assert_passes(checks.test_batch_topk, _topk_dsae_major_correct)
    assert_passes(checks.test_absorption_fraction, _abs_onehot_bmm_correct)
    assert_passes(checks.test_generate_hierarchical_batch, _gen_floor_index_correct)
    assert_passes(checks.test_batchtopk_encode, _EncReluAfterTopkCorrect)
    assert_passes(checks.test_matryoshka_loss, _mat_centred_target_correct)
