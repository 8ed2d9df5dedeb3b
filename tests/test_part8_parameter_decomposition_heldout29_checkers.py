"""Proofs for part 8 after the fresh40 measurement: CausalImportance's w_out moved inside the GELU (`w_out_in_gelu`),
and stochastic_reconstruction_losses run with masked_product's slips (`product_<slip>`): U[l] @ V[l] passed as W,
so the delta W - U V vanishes (`product_no_delta`), and the mask applied twice in every masked product."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import solutions.part8_parameter_decomposition as sol
import tests.part8_parameter_decomposition as checks
from tests.proving import assert_fails


def _ci(z_of):
    class CausalImportance(sol.CausalImportance):
        def forward(self, a, V):
            h = torch.einsum("bid,icd->bic", a, V)[..., None]
            z = z_of(self, h)
            return sol.LowerLeakyHardSigmoid.apply(z, self.alpha), sol.UpperLeakyHardSigmoid.apply(z, self.alpha)

    return CausalImportance


def test_w_out_inside_gelu_named():
    for z_of, shown in (
        (lambda m, h: F.gelu((h * m.w_in + m.b_in) * m.w_out).sum(-1) + m.b_out, "GELU(w_out · (w_in h + b_in))"),
        (lambda m, h: F.gelu(h * m.w_in * m.w_out + m.b_in).sum(-1) + m.b_out, "GELU(w_out · w_in h + b_in)"),
    ):
        err = assert_fails(checks.test_causal_importance, _ci(z_of), "w_out_in_gelu")
        assert f"w_out is inside the GELU, Σ_j {shown}" in err.hint


def _recon(W_of, product=sol.masked_product):
    def impl(chain, U, V, x, masks, dmasks):
        target, L = chain(x), len(chain.weights)

        def loss(layers):
            def layer_fn(n, a):
                if n not in layers:
                    return torch.einsum("bid,iod->bio", a, chain.weights[n])
                return product(a, W_of(chain, U, V, n), U[n], V[n], masks[n], dmasks[n])

            return (chain(x, layer_fn) - target).pow(2).mean((0, 2)).sum()

        return loss(set(range(L))), sum(loss({n}) for n in range(L)) / L

    return impl


def test_uv_passed_as_w_names_the_missing_delta():
    err = assert_fails(
        checks.test_stochastic_reconstruction_losses, _recon(lambda c, U, V, n: U[n] @ V[n]), "product_no_delta"
    )
    assert "lacks its delta term m_Δ · (W - U V) a" in err.hint and "U[l] @ V[l] passed" in err.hint


def test_mask_twice_in_every_product_named():
    def squared(a, W, U, V, mask, delta_mask):
        return sol.masked_product(a, W, U, V, mask**2, delta_mask)

    err = assert_fails(
        checks.test_stochastic_reconstruction_losses,
        _recon(lambda c, U, V, n: c.weights[n], squared),
        "product_mask_squared",
    )
    assert "masked_product's slip: apply the mask once" in err.hint
