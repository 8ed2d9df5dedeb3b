"""Proofs for section 5b (audit 49): an encode whose batch_topk budget is not cfg.k names the config field that
equals that budget (read back from the config, and k ± 1, 2·k, k // 2, k²) beside a literal, and no longer offers
'a hard-coded k, or another field' as the exhaustive pair; fresh47's in-place top-k is named in_place, not abs_topk."""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import solutions.part5b_absorption as P
import tests.part5b_absorption as checks
from tests.proving import assert_fails


def _encode_class(budget) -> type:
    class BatchTopKToySAE(P.BatchTopKToySAE):
        def encode(self, h):
            pre = F.relu(torch.einsum("bid,ids->bis", h - self.b_dec, self.W_enc) + self.b_enc)
            if not self.training:
                return pre * (pre > self.threshold[None, :, None]).to(pre.dtype)
            acts = P.batch_topk(pre, budget(self.cfg))
            with torch.no_grad():
                for i in range(acts.shape[1]):
                    kept = acts[:, i][acts[:, i] > 0]
                    if kept.numel():
                        self.threshold[i] += self.THRESHOLD_MOMENTUM * (kept.min() - self.threshold[i])
            return acts

    return BatchTopKToySAE


def _topk_masked_fill_inplace(pre, k):
    b = pre.shape[0]
    flat = einops.rearrange(pre, "b i d -> i (b d)")
    idx = flat.topk(k * b, dim=-1).indices
    keep = torch.zeros_like(flat, dtype=torch.bool).scatter(-1, idx, True)
    keep = einops.rearrange(keep, "i (b d) -> b i d", b=b)
    with torch.no_grad():
        pre.masked_fill_(~keep, 0)
    return pre


def test_budget_from_n_inst_names_that_field():
    err = assert_fails(checks.test_batchtopk_encode, _encode_class(lambda cfg: cfg.n_inst), "topk_budget")
    assert "cfg.n_inst" in err.hint and "hard-coded k, or another field" not in err.hint


def test_budget_one_lists_what_reproduces_it():
    err = assert_fails(checks.test_batchtopk_encode, _encode_class(lambda cfg: 1), "topk_budget")
    assert "k=1" in err.hint and "a literal 1" in err.hint and "k - 1" in err.hint
    assert "another field" not in err.hint


def test_budget_doubled_not_called_hard_coded():
    """k + 1 = 3 equals cfg.n_inst too: both are listed (the checker cannot tell them apart), no guess added."""
    err = assert_fails(checks.test_batchtopk_encode, _encode_class(lambda cfg: cfg.k + 1), "topk_budget")
    assert "k + 1" in err.hint and "cfg.n_inst" in err.hint and "hard-coded k" not in err.hint


def test_fresh47_topk_masked_fill_inplace_named_in_place():
    err = assert_fails(checks.test_batch_topk, _topk_masked_fill_inplace, "in_place")
    assert "magnitude" not in err.hint
