"""Proofs: quantities in the wrong place read back (tests/part8_parameter_decomposition_misplaced.py): ablation
losses off by a per-term factor (‖T_k‖²) or with one output dim left out; CausalImportance with b_out as the hidden
bias; masked_product with the pieces averaged over C; the minimality power applied after the sum over C."""

from __future__ import annotations

import torch.nn.functional as F

import solutions.part8_parameter_decomposition as sol
import tests.part8_parameter_decomposition as checks
from tests.proving import assert_fails


def _ablation(post):
    def impl(chain, terms, x):
        y, out = chain(x), []
        for k in range(terms.shape[1]):
            W = chain.weights[0] - terms[:, k]
            run = chain(x, lambda n, a, W=W: sol_mm(a, W if n == 0 else chain.weights[n]))
            out.append(post(run - y, terms[:, k]))
        return sol_stack(out)

    return impl


def sol_mm(a, W):
    return (a[:, :, None, :] * W[None]).sum(-1)


def sol_stack(out):
    import torch

    return torch.stack(out).permute(2, 0, 1)


def test_ablation_per_term_norm():
    impl = _ablation(lambda d, T: d.pow(2).mean(-1) / T.pow(2).sum((-2, -1)))
    assert "‖T_k‖²" in assert_fails(checks.test_ablation_losses, impl, "per_term_factor").hint


def test_ablation_last_output_dim_dropped():
    impl = _ablation(lambda d, T: d[..., :-1].pow(2).mean(-1))
    assert "d[..., :-1]" in assert_fails(checks.test_ablation_losses, impl, "output_dim_dropped").hint


def test_ci_b_out_as_hidden_bias():
    class CI(sol.CausalImportance):
        def forward(self, a, V):
            h = (a[:, :, None, :] * V[None]).sum(-1)
            z = (F.gelu(h[..., None] * self.w_in + self.b_out[..., None]) * self.w_out).sum(-1) + self.b_out
            return sol.LowerLeakyHardSigmoid.apply(z, self.alpha), sol.UpperLeakyHardSigmoid.apply(z, self.alpha)

    hint = assert_fails(checks.test_causal_importance, CI, "param_in_place").hint
    assert "b_out used in b_in's place" in hint


def test_masked_product_pieces_averaged():
    def impl(a, W, U, V, mask, delta_mask):
        pieces = (((a[:, :, None, :] * V[None]).sum(-1) * mask)[:, :, None, :] * U[None]).sum(-1)
        delta = sol_mm(a, W - U @ V)
        return pieces / U.shape[-1] + delta_mask[..., None] * delta

    hint = assert_fails(checks.test_masked_product, impl, "part_scaled").hint
    assert "divided by 7" in hint and "averaged" in hint


def test_minimality_power_after_sum():
    def impl(ci, p, eps=1e-12):
        return sum((g.sum(-1) + eps).pow(p) for g in ci).mean(0).sum()

    hint = assert_fails(checks.test_importance_minimality_loss, impl, "power_after_sum").hint
    assert "(Σ_c g + eps)^p" in hint
