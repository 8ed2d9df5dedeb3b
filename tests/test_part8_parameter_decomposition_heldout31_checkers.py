"""Proofs for part 8 after the fresh42 measurement (`part8_parameter_decomposition_layer_reads`): the ablation's
input direction projected out of a (`input_direction`), a faithfulness sum over a subset of the matrices
(`matrix_skipped`), CausalImportance's GELU after the w_out sum (`gelu_after_sum`) or its hard sigmoid per hidden
unit (`sigmoid_per_unit`), and a reconstruction loss on a hidden activation (`hidden_activation`)."""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import solutions.part8_parameter_decomposition as sol
import tests.part8_parameter_decomposition as checks
from tests.proving import assert_fails

L_, U_ = sol.LowerLeakyHardSigmoid, sol.UpperLeakyHardSigmoid


def abl_input_direction(chain, terms, x):
    base, out = chain(x), []
    for k in range(terms.shape[1]):
        v = torch.linalg.svd(terms[:, k], full_matrices=False)[2][:, 0]  # [inst d_in]

        def lf(n, a, v=v):
            if n == 0:
                a = a - einops.einsum(a, v, "b i d, i d -> b i")[..., None] * v
            return einops.einsum(a, chain.weights[n], "b i d, i o d -> b i o")

        out.append((chain(x, lf) - base).pow(2).mean(-1))
    return torch.stack(out).permute(2, 0, 1)


def test_input_direction_projected_out_named():
    err = assert_fails(checks.test_ablation_losses, abl_input_direction, "input_direction")
    assert "top right singular vector" in err.hint


def test_first_matrix_skipped_named():
    def faith(weights, U, V):
        se = sum((W - u @ v).pow(2).sum((-2, -1)) for W, u, v in zip(weights[1:], U[1:], V[1:], strict=True))
        return (se / sum(W[0].numel() for W in weights)).sum()

    err = assert_fails(checks.test_faithfulness_loss, faith, "matrix_skipped")
    assert "weights[0] left out" in err.hint


class GeluAfter(sol.CausalImportance):
    def forward(self, a, V):
        h = einops.einsum(a, V, "b i d, i c d -> b i c")
        z = F.gelu(((h[..., None] * self.w_in + self.b_in) * self.w_out).sum(-1)) + self.b_out
        return L_.apply(z, self.alpha), U_.apply(z, self.alpha)


class SigmoidPerUnit(sol.CausalImportance):
    def forward(self, a, V):
        h = einops.einsum(a, V, "b i d, i c d -> b i c")
        hid = F.gelu(h[..., None] * self.w_in + self.b_in) * self.w_out + self.b_out[..., None] / self.w_in.shape[-1]
        return L_.apply(hid, self.alpha).sum(-1).clamp(0, 1), U_.apply(hid, self.alpha).sum(-1).clamp(0, 1)


def test_gelu_after_the_sum_named():
    assert_fails(checks.test_causal_importance, GeluAfter, "gelu_after_sum")


def test_sigmoid_per_hidden_unit_named():
    assert_fails(checks.test_causal_importance, SigmoidPerUnit, "sigmoid_per_unit")


def test_hidden_activation_compared_named():
    def recon(chain, U, V, x, masks, dms):
        def lf_for(layers):
            def lf(n, a):
                if n in layers:
                    return sol.masked_product(a, chain.weights[n], U[n], V[n], masks[n], dms[n])
                return einops.einsum(a, chain.weights[n], "b i d, i o d -> b i o")

            return lf

        t, L = chain.run(x)[1][-1], len(chain.weights)
        loss = lambda s: (chain.run(x, lf_for(s))[1][-1] - t).pow(2).mean((0, 2)).sum()
        return loss(set(range(L))), sum(loss({n}) for n in range(L)) / L

    err = assert_fails(checks.test_stochastic_reconstruction_losses, recon, "hidden_activation")
    assert "hidden activation" in err.hint
