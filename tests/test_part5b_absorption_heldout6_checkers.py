"""Proofs for the part 5b checkers from the fresh15 held-out trial (the others are in
test_part5b_absorption_checkers.py and ..._heldout*_checkers.py)."""

from __future__ import annotations

import einops
import pytest
import torch
import torch.nn.functional as F

import solutions.part5b_absorption as R
import tests.part5b_absorption as checks
from tests.proving import assert_fails


def _generator(bug: str):
    def generate(cfg, batch_size, device="cpu"):
        P, C = cfg.n_parents, cfg.n_children
        shape = (batch_size, cfg.n_inst, P)
        parents = torch.rand(shape, device=device) < cfg.p_parent
        if cfg.exclusive and bug == "drop_if_several":
            ch = torch.rand(*shape, C, device=device) < cfg.p_child
            children = ch & (ch.sum(-1, keepdim=True) == 1)
        elif cfg.exclusive:
            u = (torch.randn if bug == "randn_u" else torch.rand)(*shape, 1, device=device)
            n_bins = P if bug == "arange_parents" else C
            lo = torch.arange(n_bins, device=device) * cfg.p_child
            children = (u >= lo) & (u < lo + cfg.p_child)
        else:
            children = torch.rand(*shape, C, device=device) < cfg.p_child
        children = children & parents[..., None]
        return torch.cat([parents.float(), children.reshape(batch_size, cfg.n_inst, -1).float()], dim=-1)

    return generate


def test_generator_bins_over_n_parents_fresh15():
    err = assert_fails(checks.test_generate_hierarchical_batch, _generator("arange_parents"), "feature_count")
    assert "cfg.n_parents + cfg.n_parents·cfg.n_parents" in err.hint
    assert "n_parents·cfg.n_children:" not in err.hint  # 6 = P·C too on the checker's config: the probe rules it out


def test_generator_exclusive_randn_fresh15():
    err = assert_fails(checks.test_generate_hierarchical_batch, _generator("randn_u"), "randn_not_rand")
    assert "NORMAL" in err.hint


def test_generator_exclusive_dropped_together_fresh15():
    assert_fails(checks.test_generate_hierarchical_batch, _generator("drop_if_several"), "exclusive_dropped_together")


def _absorption(scope: str):
    def absorption_fraction(features, acts, W_dec, W_features, parent_of, cos_threshold=0.3):
        cos = torch.bmm(F.normalize(W_dec, dim=-1), F.normalize(W_features, dim=1))  # [inst d_sae feats]
        n_inst, out = acts.shape[1], []
        for p in [i for i, q in enumerate(parent_of) if q == -1]:
            kids = [i for i, q in enumerate(parent_of) if q == p]
            cases = (features[..., p] > 0) & (features[..., kids].sum(-1) > 0)
            lat = cos[..., p].argmax(dim=1)
            carriers = (cos[..., p] >= cos_threshold) & (torch.arange(cos.shape[1]) != lat[:, None])
            if scope == "batch":
                carried = ((acts > 0).any(0) & carriers).any(-1)[None]
            elif scope == "none":
                carried = torch.ones_like(cases)
            else:
                carried = ((acts > 0) & carriers[None]).any(-1)
            absorbed = cases & (acts[:, torch.arange(n_inst), lat] == 0) & carried
            out.append(absorbed.float().sum(0) / cases.float().sum(0).clamp_min(1))
        return torch.stack(out, -1)

    return absorption_fraction


def test_absorption_carrier_over_whole_batch_fresh15():
    err = assert_fails(checks.test_absorption_fraction, _absorption("batch"), "carrier_whole_batch")
    assert "same example" in err.hint


def test_absorption_no_carrier_still_named_fresh15():
    # the probe that finds a whole-batch carrier leaves a carrier left out altogether to its own hint
    assert_fails(checks.test_absorption_fraction, _absorption("none"), "no_carrier")


def test_absorption_probe_passes_correct_fresh15():
    checks.test_absorption_fraction(_absorption("example"), device="cpu")


def _topk(bug: str):
    def batch_topk(pre, k):
        B, n_inst, S = pre.shape
        if bug == "no_flatten":
            x = pre.transpose(0, 1)
            top = x.topk(min(k * B, S), dim=-1)
            return torch.zeros_like(x).scatter(-1, top.indices, top.values).transpose(0, 1)
        flat = pre.permute(1, 0, 2).reshape(n_inst, B * S)
        order = flat.argsort(dim=-1, descending=True)
        idx = order[: k * B] if bug == "slice_dim0" else order[:, : k * B]
        mask = torch.zeros_like(flat, dtype=torch.bool).scatter(-1, idx, True)
        kept = flat.masked_fill(mask if bug == "inverted" else ~mask, 0.0)
        return kept.reshape(n_inst, B, S).permute(1, 0, 2)

    return batch_topk


@pytest.mark.parametrize(
    ("bug", "code"), [("inverted", "mask_inverted"), ("slice_dim0", "slice_wrong_axis"), ("no_flatten", "per_example")]
)
def test_batch_topk_kept_patterns_fresh15(bug, code):
    assert_fails(checks.test_batch_topk, _topk(bug), code)


def test_batch_topk_kept_pattern_correct_fresh15():
    checks.test_batch_topk(_topk("none"), device="cpu")


def test_batchtopk_encode_gate_before_b_enc_fresh15():
    class BatchTopKToySAE(R.BatchTopKToySAE):
        def encode(self, h):
            centred = einops.einsum(h - self.b_dec, self.W_enc, "b i d, i d s -> b i s")
            pre = F.relu(centred + self.b_enc)
            if self.training:
                return R.BatchTopKToySAE.encode(self, h)
            return pre * (centred > self.threshold[:, None])

    assert_fails(checks.test_batchtopk_encode, BatchTopKToySAE, "gate_before_b_enc")
