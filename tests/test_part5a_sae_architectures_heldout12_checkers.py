"""Proofs for part 5a's diagnoses added after the fresh24 held-out measurement: a sign slip on one parameter of the
Gated SAE (exp(-r_mag)) named by the parameter whose negation reproduces every output (tests/parameter_signs.py),
and AuxK's decoded estimate passed through a ReLU or written as a difference of squares
(tests/loss_difference_of_squares.py)."""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import solutions.part5a_sae_architectures as A
import tests.part5a_sae_architectures as C
from tests.loss_difference_of_squares import difference_of_squares
from tests.parameter_signs import negated_parameter
from tests.proving import assert_fails


class _NegatedRMag(A.GatedToySAE):
    def forward(self, h):
        x = h - self.b_dec
        proj = einops.einsum(x, self.W_enc, "b i d, i d s -> b i s")
        gate_pre = proj + self.b_enc
        acts = (gate_pre > 0).to(h.dtype) * F.relu(proj * (-self.r_mag).exp() + self.b_mag)
        W = self.W_dec_normalized
        h_rec = einops.einsum(acts, W, "b i s, i s d -> b i d") + self.b_dec
        gate_post = F.relu(gate_pre)
        via_gate = einops.einsum(gate_post, W.detach(), "b i s, i s d -> b i d") + self.b_dec.detach()
        ld = {
            "L_reconstruction": (h_rec - h).pow(2).mean(-1),
            "L_sparsity": gate_post.sum(-1),
            "L_aux": (via_gate - h).pow(2).mean(-1),
        }
        per = ld["L_reconstruction"] + self.sparsity_coeff * ld["L_sparsity"] + ld["L_aux"]
        return ld, per.mean(0).sum(), acts, h_rec


def test_gated_exp_of_negated_r_mag():
    failure = assert_fails(C.test_gated_forward, _NegatedRMag, "negated_parameter")
    assert "`r_mag` negated" in failure.message and "exp(-r_mag)" in failure.hint


def test_negated_parameter_silent_on_the_right_outputs_and_on_zero_parameters():
    layer = torch.nn.Linear(3, 2)
    with torch.no_grad():
        layer.bias.zero_()
    x = torch.randn(5, 3)
    run = lambda m: [m(x)]
    assert negated_parameter([layer(x)], layer, run) is None  # right: nothing to name
    assert negated_parameter([x @ -layer.weight.T], layer, run) == "weight"
    assert negated_parameter([layer(x) + 1], layer, run) is None  # no negation gives it


def _auxk(kind: str):
    def auxk_loss(pre, residual, dead, W, k_aux):
        top = torch.where(dead, pre, -torch.inf).topk(k_aux, dim=-1)
        values = torch.where(top.values.isfinite(), top.values, torch.zeros_like(top.values))
        r_hat = einops.einsum(torch.zeros_like(pre).scatter(-1, top.indices, values), W, "b i s, i s d -> b i d")
        if kind == "relu":
            return (residual - F.relu(r_hat)).pow(2).mean(-1)
        if kind == "squares":
            return (residual.pow(2) - r_hat.pow(2)).mean(-1)
        return (r_hat.pow(2) - residual.pow(2)).mean(-1)

    return auxk_loss


def test_auxk_relu_on_the_decoded_estimate():
    failure = assert_fails(C.test_auxk_loss, _auxk("relu"), "decoded_relu")
    assert "no ReLU" in failure.hint


def test_auxk_difference_of_squares_both_orders():
    failure = assert_fails(C.test_auxk_loss, _auxk("squares"), "difference_of_squares")
    assert "residual² - residual_hat²" in failure.hint and "negative on" in failure.hint
    failure = assert_fails(C.test_auxk_loss, _auxk("reversed"), "difference_of_squares")
    assert "residual_hat² - residual²" in failure.hint


def test_difference_of_squares_leaves_out_what_equals_the_right_loss():
    a = torch.randn(4, 3)
    assert difference_of_squares(a, torch.zeros_like(a), lambda e: e.mean(-1), "a", "b")[0][1].startswith(
        "your loss is b² - a²"
    )  # a² - 0² is the right loss when b = 0: only the other order is offered
    assert len(difference_of_squares(a, a + 1, lambda e: e.mean(-1), "a", "b")) == 2
