"""Proofs for the part 5b checkers from the fresh14 held-out trial (the others are in
test_part5b_absorption_checkers.py and ..._heldout*_checkers.py)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import solutions.part5b_absorption as P
import tests.part5b_absorption as checks
from tests.proving import assert_fails


def _encode_class(momentum: float | None = None, k: int | None = None) -> type:
    class BatchTopKToySAE(P.BatchTopKToySAE):
        def encode(self, h):
            pre = F.relu(torch.einsum("bid,ids->bis", h - self.b_dec, self.W_enc) + self.b_enc)
            if not self.training:
                return pre * (pre > self.threshold[None, :, None]).to(pre.dtype)
            acts = P.batch_topk(pre, self.cfg.k if k is None else k)  # the module's own, not the routed one
            with torch.no_grad():
                m = self.THRESHOLD_MOMENTUM if momentum is None else momentum
                for i in range(acts.shape[1]):
                    kept = acts[:, i][acts[:, i] > 0]
                    if kept.numel():
                        self.threshold[i] = self.threshold[i] + m * (kept.min() - self.threshold[i])
            return acts

    return BatchTopKToySAE


def test_batchtopk_encode_half_momentum_fresh14():
    err = assert_fails(checks.test_batchtopk_encode, _encode_class(momentum=0.5), "momentum")
    assert "factor 0.5" in err.hint


def test_batchtopk_encode_other_momentum_fresh14():
    err = assert_fails(checks.test_batchtopk_encode, _encode_class(momentum=0.1), "momentum")
    assert "factor 0.1" in err.hint


def test_batchtopk_encode_k_hard_coded_fresh14():
    err = assert_fails(checks.test_batchtopk_encode, _encode_class(k=1), "topk_budget")
    assert "k=1" in err.hint


def test_batchtopk_encode_k_from_other_field_fresh14():
    """k = 4 keeps every positive entry here: the output is relu(pre) itself, which an unused top-k result gives
    too, so both causes are listed (the unused result first; batch_topk wasn't seen called with cfg.k)."""
    err = assert_fails(checks.test_batchtopk_encode, _encode_class(k=4), "topk_unused")
    assert "never used" in err.hint and "k ≥ 4" in err.hint and "a hard-coded k" in err.hint
