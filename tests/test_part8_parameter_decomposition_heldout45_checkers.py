"""Proofs for part 8 after the fresh45 round: N taken from V_l's size (Σ C · d_in, 2N on the main inputs, told
from the ½ factor by a probe with another C: `wrong_count`), a relative error ‖Δ‖² / ‖W‖² (`relative_error`), a
matrix left out of the layerwise runs or the full run (`layerwise_skipped`, `full_skipped`), and the round's
correct variants."""

from __future__ import annotations

import einops
import pytest
import torch
import torch.nn.functional as F

import solutions.part8_parameter_decomposition as S
import tests.part8_parameter_decomposition as checks
from tests.proving import assert_fails, assert_passes


# --------------------------------------------------------------------------------------------
# faithfulness_loss
# --------------------------------------------------------------------------------------------
def _faith_over(count):
    def impl(weights, U, V):
        se = sum((W - u @ v).pow(2).sum((-2, -1)) for W, u, v in zip(weights, U, V, strict=True))
        return (se / count(weights, U, V)).sum()

    return impl


def test_n_from_V_size_named_not_half():
    impl = _faith_over(lambda ws, U, V: sum(W.shape[-1] * u.shape[-1] for W, u in zip(ws, U, strict=True)))
    err = assert_fails(checks.test_faithfulness_loss, impl, "wrong_count")
    assert "the entries of V_l" in err.hint and "1/2" not in err.hint


def test_n_from_U_size_named():
    impl = _faith_over(lambda ws, U, V: sum(u[0].numel() for u in U))
    err = assert_fails(checks.test_faithfulness_loss, impl, "wrong_count")
    assert "the entries of U_l" in err.hint


def test_doubled_n_still_half():
    impl = _faith_over(lambda ws, U, V: 2 * sum(W[0].numel() for W in ws))
    err = assert_fails(checks.test_faithfulness_loss, impl, "scale")
    assert "1/2" in err.hint


def faith_rel(weights, U, V):
    se = sum((W - u @ v).pow(2).sum((-2, -1)) / W.pow(2).sum((-2, -1)) for W, u, v in zip(weights, U, V, strict=True))
    n = len(weights)
    return (se / n).sum()


def faith_rel_global(weights, U, V):
    se = sum((W - u @ v).pow(2).sum() for W, u, v in zip(weights, U, V, strict=True))
    return se / sum(W.pow(2).sum() for W in weights)


@pytest.mark.parametrize("impl", [faith_rel, faith_rel_global])
def test_relative_error_named(impl):
    err = assert_fails(checks.test_faithfulness_loss, impl, "relative_error")
    assert "‖W_l‖²" in err.hint


def test_faith_dist_passes():
    def faith_dist(weights, U, V):
        n = sum(W[0].numel() for W in weights)
        return sum(torch.dist(W, u @ v) ** 2 for W, u, v in zip(weights, U, V, strict=True)) / n

    assert_passes(checks.test_faithfulness_loss, faith_dist)


# --------------------------------------------------------------------------------------------
# stochastic_reconstruction_losses: a matrix left out
# --------------------------------------------------------------------------------------------
def _rec(full_layers, lw_layers, divisor=None):
    def impl(chain, U, V, x, masks, dms):
        target, n = chain(x), len(chain.weights)

        def run(layers):
            def fn(k, a):
                if k in layers:
                    return S.masked_product(a, chain.weights[k], U[k], V[k], masks[k], dms[k])
                return einops.einsum(a, chain.weights[k], "batch inst d_in, inst d_out d_in -> batch inst d_out")

            return (chain(x, fn) - target).pow(2).mean((0, 2)).sum()

        ls = lw_layers(n)
        return run(set(full_layers(n))), sum(run({k}) for k in ls) / (divisor(n) if divisor else len(ls))

    return impl


@pytest.mark.parametrize(
    "impl, code, words",
    [
        (_rec(range, lambda n: range(n - 1)), "layerwise_skipped", "matrix 3 is never masked"),
        (_rec(range, lambda n: range(1, n)), "layerwise_skipped", "matrix 0 is never masked"),
        (_rec(range, lambda n: range(n - 1), divisor=lambda n: n), "layerwise_skipped", "divided by 4"),
        (_rec(lambda n: range(n - 1), range), "full_skipped", "leaves matrix 3 unmasked"),
        (_rec(lambda n: range(n - 1), lambda n: range(n - 1)), "full_skipped", "leaves it out too"),
    ],
)
def test_recon_skipped_matrix_named(impl, code, words):
    err = assert_fails(checks.test_stochastic_reconstruction_losses, impl, code)
    assert words in err.hint


def test_recon_stack_mean_passes():
    def rec_stack(chain, U, V, x, masks, dms):
        tgt, n = chain(x), len(chain.weights)

        def fn_for(on):
            return lambda k, a: (
                S.masked_product(a, chain.weights[k], U[k], V[k], masks[k], dms[k])
                if on[k]
                else torch.einsum("bij,ioj->bio", a, chain.weights[k])
            )

        full = F.mse_loss(chain(x, fn_for([True] * n)), tgt, reduction="none").mean((0, 2)).sum()
        runs = [chain(x, fn_for([i == k for i in range(n)])) for k in range(n)]
        lw = torch.stack([F.mse_loss(r, tgt, reduction="none").mean((0, 2)).sum() for r in runs]).mean()
        return full, lw

    assert_passes(checks.test_stochastic_reconstruction_losses, rec_stack)


# --------------------------------------------------------------------------------------------
# the round's other correct variants
# --------------------------------------------------------------------------------------------
def svd_sqrt_split(W):
    U, s, Vh = torch.linalg.svd(W, full_matrices=False)
    r = s.sqrt()
    A, B = U * r[:, None, :], Vh * r[:, :, None]
    return A.mT[..., :, None] * B[..., None, :]


def abl_permute(chain, terms, x):
    original, out = chain(x), []
    for k in range(terms.shape[1]):
        Wk = chain.weights[0] - terms[:, k]

        def fn(n, a, Wk=Wk):
            W = Wk if n == 0 else chain.weights[n]
            return einops.einsum(a, W, "batch inst d_in, inst d_out d_in -> batch inst d_out")

        out.append((chain(x, fn) - original).pow(2).mean(-1))
    return torch.stack(out).permute(2, 0, 1)


class LowerHardtanh(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, alpha=0.01):
        ctx.save_for_backward(x)
        ctx.alpha = alpha
        return F.hardtanh(x, 0.0, 1.0)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        slope = torch.ones_like(x)
        slope[x < 0] = ctx.alpha
        slope[x > 1] = 0
        return g * slope, None


class CIMatmul(S.CausalImportance):
    def forward(self, a, V):
        inner = (a.unsqueeze(-2) @ V.mT).squeeze(-2)
        hid = F.gelu(torch.addcmul(self.b_in, inner.unsqueeze(-1), self.w_in))
        z = torch.einsum("bicd,icd->bic", hid, self.w_out) + self.b_out
        return S.LowerLeakyHardSigmoid.apply(z, self.alpha), S.UpperLeakyHardSigmoid.apply(z, self.alpha)


def masks_lerp(cis):
    m = [torch.lerp(torch.rand_like(g), torch.ones_like(g), g) for g in cis]
    return m, [torch.rand_like(g[..., 0]) for g in cis]


def mp_masked_V(a, W, U, V, mask, dm):
    Vm = mask[..., None] * V  # batch inst C d_in
    out = torch.einsum("ioc,bicd,bid->bio", U, Vm, a)
    Wa, UVa = torch.einsum("iod,bid->bio", W, a), torch.einsum("ioc,icd,bid->bio", U, V, a)
    return out + dm[..., None] * Wa - dm[..., None] * UVa


def min_mean_scaled(cis, p, eps=1e-12):
    tot = 0
    for g in cis:
        tot = tot + (g + eps).pow(p).sum(-1)
    return tot.mean() * tot.shape[1]


def adv_data_inplace(loss_fn, init, n_steps, step_size):
    s = [x.detach().clone().requires_grad_(True) for x in init]
    for _ in range(n_steps):
        gs = torch.autograd.grad(loss_fn(s), s)
        for x, g in zip(s, gs, strict=True):
            x.data.add_(step_size * g.sign()).clamp_(0, 1)
    return [x.detach().clone() for x in s]


@pytest.mark.parametrize(
    "check, impl",
    [
        (checks.test_svd_terms, svd_sqrt_split),
        (checks.test_ablation_losses, abl_permute),
        (checks.test_lower_leaky_hard_sigmoid, LowerHardtanh),
        (checks.test_causal_importance, CIMatmul),
        (checks.test_sample_masks, masks_lerp),
        (checks.test_masked_product, mp_masked_V),
        (checks.test_importance_minimality_loss, min_mean_scaled),
        (checks.test_adversarial_sources, adv_data_inplace),
    ],
)
def test_round_correct_variants_pass(check, impl):
    assert_passes(check, impl)
