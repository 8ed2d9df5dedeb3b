"""Proofs for the part 5b checkers from the fresh16 held-out trial (the others are in
test_part5b_absorption_checkers.py and ..._heldout*_checkers.py)."""

from __future__ import annotations

import torch

import tests.part5b_absorption as checks
from tests.proving import assert_fails


def test_batch_topk_loop_writes_batch_axis_fresh16():
    def batch_topk(pre, k):
        B, n_inst, S = pre.shape
        out = torch.zeros_like(pre)
        for i in range(n_inst):
            x = pre[:, i].reshape(-1)
            top = x.topk(k * B)
            out[i] = torch.zeros_like(x).scatter(0, top.indices, top.values).reshape(B, S)[i] if i < B else 0
        return out

    err = assert_fails(checks.test_batch_topk, batch_topk, "loop_batch_axis")
    assert "out[:, i]" in err.hint
