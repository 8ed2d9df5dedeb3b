"""Proofs: a step size divided by the number of sources is named by the count that fits (not n_steps); a random
forward in CausalImportance (dropout) is named before the batch / mixing probes read it; faithfulness with U V
divided by C (pieces averaged) and a global mean times L instead of n_inst are read back (product_scaled,
count_ratio); ablation_losses on instance 0's input for every instance is named."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import solutions.part8_parameter_decomposition as sol
import tests.part8_parameter_decomposition as checks
from tests.proving import assert_fails, assert_passes


def test_step_divided_by_number_of_sources():
    def impl(loss_fn, init, n_steps, step_size):
        src = [s.detach().clone() for s in init]
        for _ in range(n_steps):
            src = [s.requires_grad_(True) for s in src]
            grads = torch.autograd.grad(loss_fn(src), src)
            with torch.no_grad():
                src = [(s + step_size / len(src) * g.sign()).clamp(0, 1) for s, g in zip(src, grads, strict=True)]
        return [s.detach() for s in src]

    hint = assert_fails(checks.test_adversarial_sources, impl, "step_factor").hint
    assert "number of sources" in hint and "step_size / n_steps" not in hint


def test_ci_dropout_is_random_forward():
    class CI(sol.CausalImportance):
        def forward(self, a, V):
            h = torch.einsum("bid,icd->bic", a, V)
            hidden = F.dropout(F.gelu(h[..., None] * self.w_in + self.b_in), p=0.1)
            z = (hidden * self.w_out).sum(-1) + self.b_out
            return sol.LowerLeakyHardSigmoid.apply(z, self.alpha), sol.UpperLeakyHardSigmoid.apply(z, self.alpha)

    torch.manual_seed(0)
    assert "dropout" in assert_fails(checks.test_causal_importance, CI, "random_forward").hint


def test_faithfulness_pieces_averaged():
    def impl(weights, U, V):
        se = sum((W - u @ v / u.shape[-1]).pow(2).sum((-2, -1)) for W, u, v in zip(weights, U, V, strict=True))
        return (se / sum(W[0].numel() for W in weights)).sum()

    assert "(U V) / 7" in assert_fails(checks.test_faithfulness_loss, impl, "product_scaled").hint


def test_faithfulness_global_mean_times_matrices():
    def impl(weights, U, V):
        d = torch.cat([(W - u @ v).flatten(1) for W, u, v in zip(weights, U, V, strict=True)], 1)
        return d.pow(2).mean() * len(weights)

    def correct(weights, U, V):
        d = torch.cat([(W - u @ v).flatten(1) for W, u, v in zip(weights, U, V, strict=True)], 1)
        return d.pow(2).mean() * d.shape[0]

    hint = assert_fails(checks.test_faithfulness_loss, impl, "count_ratio").hint
    assert "4/3" in hint and "L where n_inst" in hint
    assert_passes(checks.test_faithfulness_loss, correct)


def test_ablation_instance0_input_for_all():
    def impl(chain, terms, x):
        return sol.ablation_losses(chain, terms, x[:, :1].expand_as(x))

    assert "instance 0" in assert_fails(checks.test_ablation_losses, impl, "one_instance_input").hint
