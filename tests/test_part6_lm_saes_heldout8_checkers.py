"""Proofs for the part 6 checkers from the fresh16 held-out trial (the others are in
test_part6_lm_saes_checkers.py and ..._heldout*_checkers.py)."""

from __future__ import annotations

import torch

import tests.part6_lm_saes as checks
from tests.proving import assert_fails


def test_top_activations_argmax_not_knocked_out_fresh16():
    def top_activations(acts, k):
        seq = acts.shape[1]
        masked = acts.clone()
        masked[:, 0] = -torch.inf
        vals, idx = [], []
        for _ in range(k):
            i = masked.flatten().argmax()
            vals.append(masked.flatten()[i])
            idx.append(i)
        idx = torch.stack(idx)
        return torch.stack(vals), idx // seq, idx % seq

    err = assert_fails(checks.test_top_activations, top_activations, "not_knocked_out")
    assert "-inf" in err.hint
