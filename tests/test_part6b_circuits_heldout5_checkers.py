"""Proofs for the part 6b checkers from the fresh14 held-out trial (the others are in test_part6b_circuits_checkers.py
and ..._heldout*_checkers.py)."""

from __future__ import annotations

import pytest
import torch

import tests.part6b_circuits as checks
from solutions import part6b_circuits as ref
from tests.proving import assert_fails


@pytest.mark.parametrize("a, b", [("clean", "replaced"), ("replaced", "zero_ablated"), ("clean", "zero_ablated")])
def test_replacement_losses_keys_swapped_fresh14(a, b):
    def replacement_losses(model, tc, tokens):
        out = ref.replacement_losses(model, tc, tokens)
        out[a], out[b] = out[b], out[a]
        return out

    err = assert_fails(checks.test_replacement_losses, replacement_losses, "keys_swapped")
    assert repr(a) in err.hint and repr(b) in err.hint


def _influence(bug):
    def node_influence(adjacency, logit_weights):
        a_hat = adjacency.abs()
        sums = a_hat.sum(-1, keepdim=True)
        a_hat = a_hat / (sums if bug == "unguarded" else sums.clamp_min(1e-12))
        eye = torch.eye(len(a_hat), dtype=a_hat.dtype, device=a_hat.device)
        paths = 1 / (eye - a_hat) - eye if bug == "elementwise" else torch.linalg.inv(eye - a_hat) - eye
        return logit_weights @ paths

    return node_influence


def test_node_influence_elementwise_reciprocal_fresh14():
    err = assert_fails(checks.test_node_influence, _influence("elementwise"), "elementwise_inverse")
    assert "torch.linalg.inv" in err.hint and "row sums" not in err.hint


def test_node_influence_unguarded_rows_listed_fresh14():
    err = assert_fails(checks.test_node_influence, _influence("unguarded"), "zero_rows")
    assert "clamp the row sums" in err.hint
