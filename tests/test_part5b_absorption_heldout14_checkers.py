"""Proofs for part 5b's checkers: batch_topk with a budget so large that every entry is kept (k·batch·n_inst, named
on a probe where batch·d_sae exceeds it; the hint on the shipped input lists both causes, never the scatter alone),
and absorption_fraction testing a carrier's activity with acts >= 0 (every latent counts as active), told apart
from no carrier condition at all by a threshold no other latent reaches."""

from __future__ import annotations

import einops
import pytest
import torch
import torch.nn.functional as F

import tests.part5b_absorption as checks
from tests.checking import CheckFailed
from tests.part5b_absorption_probes import nothing_zeroed
from tests.proving import assert_fails


def test_batch_topk_budget_over_all_instances():
    def batch_topk(pre, k):
        B = pre.shape[0]
        flat = einops.rearrange(pre, "b i s -> i (b s)")
        n = min(k * B * pre.shape[1], flat.shape[-1])
        top = flat.topk(n, dim=-1)
        kept = torch.zeros_like(flat).scatter(-1, top.indices, top.values)
        return einops.rearrange(kept, "i (b s) -> b i s", b=B)

    err = assert_fails(checks.test_batch_topk, batch_topk, "budget")
    assert "72 = k·batch·n_inst" in err.message and "too large" in err.hint and "scatter" not in err.hint


def test_nothing_zeroed_lists_a_large_budget_too():
    out = torch.ones(7, 3, 5)
    with pytest.raises(CheckFailed) as info:
        nothing_zeroed(out, 2, "batch_topk(pre [7, 3, 5], k=2)")
    assert info.value.code == "nothing_zeroed"
    assert "k·batch·n_inst = 42 ≥ batch·d_sae = 35" in info.value.hint and "scattered into pre" in info.value.hint
    with pytest.raises(CheckFailed) as info:
        nothing_zeroed(torch.ones(7, 3, 50), 2, "w")
    assert "budget" not in info.value.hint and "scattered into pre" in info.value.hint


@pytest.mark.parametrize("bug", ["ge0", "no_carrier"])
def test_absorption_carrier_activity(bug):
    def absorption_fraction(features, acts, W_dec, W_features, parent_of, cos_threshold=0.3):
        cos = F.cosine_similarity(W_dec.unsqueeze(-1), W_features.unsqueeze(1), dim=2, eps=1e-8)
        n_inst = acts.shape[1]
        ar = torch.arange(n_inst)
        res = []
        for p in [i for i, q in enumerate(parent_of) if q == -1]:
            ch = [i for i, q in enumerate(parent_of) if q == p]
            cases = (features[..., p] > 0) & (features[..., ch] > 0).any(-1)
            lat = cos[:, :, p].argmax(-1)
            off = acts[:, ar, lat] <= 0
            carrier = cos[:, :, p] >= cos_threshold
            carrier[ar, lat] = False
            carried = ((acts >= 0) & carrier).any(-1) if bug == "ge0" else torch.ones_like(off)
            num = (cases & off & carried).float().sum(0)
            res.append(num / cases.float().sum(0).clamp_min(1))
        return torch.stack(res, -1).to(acts.dtype)

    code = "carrier_inactive" if bug == "ge0" else "no_carrier"
    err = assert_fails(checks.test_absorption_fraction, absorption_fraction, code)
    assert "acts >= 0" in err.hint
