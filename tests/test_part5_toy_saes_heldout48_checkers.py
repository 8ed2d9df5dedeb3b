"""Proofs for part 5 after the fresh47 round's second pass: W_dec rows divided by another statistic of their d_in
entries than the L2 norm (std, rms, ...: `row_statistic`), and a ReLU written as where(gate > 0, value, 0) with the
gate or the value read before b_enc is added (`relu_gate_before_bias`, `relu_value_before_bias`)."""

from __future__ import annotations

import einops
import torch

import solutions.part5_toy_saes as P
import tests.part5_toy_saes as checks
from tests.proving import assert_fails


def _norm(fn):
    return type("NormV", (P.ToySAE,), {"W_dec_normalized": property(fn)})


def test_norm_divided_by_row_std_named():
    impl = _norm(lambda self: self.W_dec / (self.W_dec.std(dim=-1, keepdim=True) + self.cfg.weight_normalize_eps))
    failure = assert_fails(checks.test_W_dec_normalized, impl, "row_statistic")
    assert "standard deviation" in str(failure)


def test_norm_divided_by_row_biased_std_named():
    impl = _norm(lambda self: self.W_dec / (self.W_dec.std(dim=-1, unbiased=False, keepdim=True) + 1e-8))
    failure = assert_fails(checks.test_W_dec_normalized, impl, "row_statistic")
    assert "unbiased=False" in str(failure)


def _forward(kind):
    def forward(self, h):
        pre = einops.einsum(h - self.b_dec, self.W_enc, "b i d, i d s -> b i s")
        if kind == "gate":
            acts = torch.where(pre > 0, pre + self.b_enc, torch.zeros_like(pre))
        else:
            acts = torch.where(pre + self.b_enc > 0, pre, torch.zeros_like(pre))
        h_rec = einops.einsum(acts, self.W_dec_normalized, "b i s, i s d -> b i d") + self.b_dec
        L_rec = (h_rec - h).pow(2).mean(-1)
        L_sp = acts.abs().sum(-1)
        loss = (L_rec + self.sparsity_coeff * L_sp).mean(0).sum()
        return {"L_reconstruction": L_rec, "L_sparsity": L_sp}, loss, acts, h_rec

    return type("FwdV", (P.ToySAE,), {"forward": forward})


def test_forward_relu_gate_on_pre_bias_value_named():
    failure = assert_fails(checks.test_forward, _forward("gate"), "relu_gate_before_bias")
    assert "before b_enc is added" in str(failure)


def test_forward_relu_value_before_bias_named():
    failure = assert_fails(checks.test_forward, _forward("value"), "relu_value_before_bias")
    assert "before b_enc is added" in str(failure)
