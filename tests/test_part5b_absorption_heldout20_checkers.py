"""Proofs for section 5b: exclusive "no child" drawn at the text's fixed 0.1, then a child picked uniformly (right
only when n_children·p_child = 0.9), caught on a config with C·p = 0.78 and the 0.1 named; matryoshka_loss decoding
every instance with instance 0's decoder."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import solutions.part5b_absorption as sol
import tests.part5b_absorption as checks
from tests.proving import assert_fails


def test_none_at_a_fixed_tenth_then_a_uniform_child_is_named():
    def generate_hierarchical_batch(cfg, batch_size, device="cpu"):
        if not cfg.exclusive:
            return sol.generate_hierarchical_batch(cfg, batch_size, device)
        shape = (batch_size, cfg.n_inst, cfg.n_parents)
        parents = torch.rand(shape, device=device) < cfg.p_parent
        some = torch.rand(shape, device=device) >= 0.1
        pick = F.one_hot(torch.randint(cfg.n_children, shape, device=device), cfg.n_children).bool()
        children = pick & some.unsqueeze(-1) & parents.unsqueeze(-1)
        return torch.cat([parents, children.flatten(-2)], -1).float()

    failure = assert_fails(checks.test_generate_hierarchical_batch, generate_hierarchical_batch, code="p_child_ignored")
    assert "0.1" in failure.message and "no child" in failure.message


def test_matryoshka_with_instance_0_decoder_is_named():
    def matryoshka_loss(acts, W, b_dec, h, prefix_sizes):
        total = 0
        for m in prefix_sizes:
            rec = torch.einsum("bim,md->bid", acts[..., :m], W[0, :m]) + b_dec
            total = total + (rec - h).pow(2).mean(-1)
        return total

    assert_fails(checks.test_matryoshka_loss, matryoshka_loss, "decoder_first_instance")
