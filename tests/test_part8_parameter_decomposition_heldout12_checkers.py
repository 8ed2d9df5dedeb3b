"""Proofs for part 8's checkers, fourteenth file: the seventeenth fresh held-out measurement. A layerwise loss
divided by L - 1 lists both causes its ratio fits (L - 1 and the instance count); a wrap-around projection is named,
not read as an odd step size; an ablation that also strips T_kᵀ from a later matrix shaped like W_0ᵀ is caught on a
4 -> 2 -> 4 -> 7 chain; mis-paired singular vectors, other per-example reductions, other norms, W a on top of the
masked product, matrix 0's masks for every matrix, * for **, momentum and g² in backward are named."""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F

import solutions.part8_parameter_decomposition as ref
import tests.part8_parameter_decomposition as checks
import tests.part8_parameter_decomposition_slips as slips
from tests.proving import assert_fails

EIN = "batch inst d_in, inst d_out d_in -> batch inst d_out"


def _recon(chain, U, V, x, masks, dms, divisor=None, same=False):
    target = chain(x)

    def loss(layers):
        def layer_fn(n, a):
            if n in layers:
                j = 0 if same else n
                return ref.masked_product(a, chain.weights[n], U[n], V[n], masks[j], dms[j])
            return einops.einsum(a, chain.weights[n], EIN)

        return (chain(x, layer_fn) - target).pow(2).mean((0, 2)).sum()

    n = len(chain.weights)
    return loss(set(range(n))), sum(loss({m}) for m in range(n)) / (divisor or n)


def test_layerwise_divided_by_L_minus_1_is_named():
    # the recon inputs have 12 instances, so L - 1 = 3 is no other count and the one-change search names it
    fn = lambda c, U, V, x, m, d: _recon(c, U, V, x, m, d, divisor=len(c.weights) - 1)
    failure = assert_fails(checks.test_stochastic_reconstruction_losses, fn, "one_change")
    assert "/ (n_layers - 1)" in failure.hint


def test_recon_matrix_0_masks_for_every_matrix_is_named():
    fn = lambda c, U, V, x, m, d: _recon(c, U, V, x, m, d, same=True)
    failure = assert_fails(checks.test_stochastic_reconstruction_losses, fn, "masks_first")
    assert "masks[0], delta_masks[0]" in failure.hint


def _adv(direction_beta=0.0, project=lambda t: t.clamp(0, 1)):
    def adv(loss_fn, init, n_steps, step_size):
        src, mom = [s.detach().clone() for s in init], None
        for _ in range(n_steps):
            src = [s.requires_grad_(True) for s in src]
            grads = torch.autograd.grad(loss_fn(src), src)
            with torch.no_grad():
                mom = grads if mom is None else [direction_beta * m + g for m, g in zip(mom, grads, strict=True)]
                src = [project(s + step_size * m.sign()) for s, m in zip(src, mom, strict=True)]
        return [s.detach() for s in src]

    return adv


def test_wrap_around_projection_is_named():
    failure = assert_fails(checks.test_adversarial_sources, _adv(project=lambda t: torch.remainder(t, 1.0)), "wrapped")
    assert "wrapped around" in failure.hint


def test_momentum_sign_is_named():
    assert "momentum" in assert_fails(checks.test_adversarial_sources, _adv(0.9), "momentum").hint


def _abl(tied=False, reduce=lambda d: d.pow(2).mean(-1)):
    def abl(chain, terms, x):
        original, losses = chain(x), []
        for k in range(terms.shape[1]):
            Wk = chain.weights[0] - terms[:, k]

            def layer_fn(n, a, Wk=Wk):
                W = Wk if n == 0 else Wk.mT if tied and chain.weights[n].shape == Wk.mT.shape else chain.weights[n]
                return einops.einsum(a, W, EIN)

            losses.append(reduce(chain(x, layer_fn) - original))
        return einops.rearrange(torch.stack(losses), "k batch inst -> inst k batch")

    return abl


def test_ablation_tied_weights_is_caught():
    assert "W_0ᵀ" in assert_fails(checks.test_ablation_losses, _abl(tied=True), "tied_weights").hint


def test_ablation_other_reductions_are_named():
    for reduce in (lambda d: d.abs().mean(-1).pow(2), lambda d: d.pow(2).amax(-1)):
        assert "per-example loss" in assert_fails(checks.test_ablation_losses, _abl(reduce=reduce), "reduction").hint


def test_svd_mispaired_vectors_are_named():
    def svd(W):
        U, S, Vh = torch.linalg.svd(W, full_matrices=False)
        terms = [S[:, k, None, None] * U[:, :, k, None] * Vh[:, k - 1, None, :] for k in range(S.shape[-1])]
        return torch.stack(terms, dim=1)

    assert "mis-paired" in assert_fails(checks.test_svd_terms, svd, "mispaired").hint


def test_faithfulness_nuclear_norm_and_huber_are_named():
    def nuc(weights, U, V):
        n = sum(W[0].numel() for W in weights)
        norms = [torch.linalg.matrix_norm(W - u @ v, ord="nuc").pow(2) for W, u, v in zip(weights, U, V, strict=True)]
        return sum(norms).div(n).sum()

    def huber(weights, U, V):
        n = sum(W[0].numel() for W in weights)
        return sum(F.smooth_l1_loss(u @ v, W, reduction="sum") for W, u, v in zip(weights, U, V, strict=True)) / n

    assert_fails(checks.test_faithfulness_loss, nuc, "nuclear_norm")
    assert_fails(checks.test_faithfulness_loss, huber, "huber")


def test_masked_product_plus_W_a_is_named():
    fn = lambda a, W, U, V, m, dm: ref.masked_product(a, W, U, V, m, dm) + einops.einsum(a, W, EIN)
    assert "W a" in assert_fails(checks.test_masked_product, fn, "plus_W").hint


def test_minimality_times_p_is_named():
    fn = lambda cis, p, eps=1e-12: sum(((g + eps) * p).sum(-1) for g in cis).mean(0).sum()
    assert_fails(checks.test_importance_minimality_loss, fn, "times_p")


_LowerG2 = slips.learner_sigmoid(  # grad_output inside the slope and multiplied again
    lambda x, a, g: g * torch.where(x < 0, a * g, torch.where(x > 1, torch.zeros_like(g), g))
)


def test_grad_output_twice_is_named():
    failure = assert_fails(checks.test_lower_leaky_hard_sigmoid, _LowerG2, "grad_output_twice")
    assert "multiplied in twice" in failure.hint
