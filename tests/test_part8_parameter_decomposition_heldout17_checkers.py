"""Proofs for part 8's checkers, nineteenth file: the fresh21 measurement's slips. Each source's gradient read with
the others held at init is caught (the coupled probe now starts where the others' moves flip each sign); losses
put on a log scale or shared out over the terms, a full loss summed from the single-matrix ones, the other matrices
of a layerwise run masked too, a faithfulness loss divided by N twice, the penalty on g² or a log penalty, and a
multiplicative ascent step are named."""

from __future__ import annotations

import torch

import solutions.part8_parameter_decomposition as sol
import tests.part8_parameter_decomposition as checks
from tests.proving import assert_fails

EIN = "batch inst d_in, inst d_out d_in -> batch inst d_out"


def test_gradients_with_the_other_sources_held_at_init_are_caught():
    def adv(loss_fn, init, n_steps, step_size):
        s = [r.detach().clone() for r in init]
        for _ in range(n_steps):
            new = []
            for i in range(len(s)):
                ri = s[i].clone().requires_grad_(True)
                (g,) = torch.autograd.grad(loss_fn([ri if j == i else init[j] for j in range(len(s))]), [ri])
                new.append((s[i] + step_size * g.sign()).clamp(0, 1).detach())
            s = new
        return s

    failure = assert_fails(checks.test_adversarial_sources, adv, "others_at_init")
    assert "initial values" in failure.hint


def test_a_multiplicative_ascent_step_is_listed_among_the_causes():
    def adv(loss_fn, init, n_steps, step_size):
        s = [r.detach().clone() for r in init]
        for _ in range(n_steps):
            s = [r.requires_grad_(True) for r in s]
            g = torch.autograd.grad(loss_fn(s), s)
            s = [(r * (1 + step_size * gi.sign())).clamp(0, 1).detach() for r, gi in zip(s, g, strict=True)]
        return s

    failure = assert_fails(checks.test_adversarial_sources, adv, "off_lattice")
    assert "multiplicative" in failure.hint


def test_ablation_losses_on_a_log_scale_or_shared_over_the_terms_are_named():
    failure = assert_fails(
        checks.test_ablation_losses, lambda c, t, x: torch.log10(sol.ablation_losses(c, t, x) + 1e-8), "log_scale"
    )
    assert "log10" in failure.hint
    share = lambda c, t, x: (lambda L: L / L.sum(1, keepdim=True))(sol.ablation_losses(c, t, x))
    failure = assert_fails(checks.test_ablation_losses, share, "normalised")
    assert "sum over `k`" in failure.hint


def test_a_faithfulness_loss_divided_by_n_twice_is_named():
    def faith(weights, U, V):
        n = sum(W[0].numel() for W in weights)
        return sum(((W - u @ v) / n).pow(2).sum((-2, -1)) for W, u, v in zip(weights, U, V, strict=True)).sum()

    failure = assert_fails(checks.test_faithfulness_loss, faith, "divided_twice")
    assert "1/49" in failure.hint


def test_a_faithfulness_loss_under_no_grad_names_no_grad():
    def faith(weights, U, V):
        with torch.no_grad():
            return sol.faithfulness_loss(weights, U, V)

    assert "torch.no_grad()" in assert_fails(checks.test_faithfulness_loss, faith, "no_grad").hint


def _recon(others):
    def recon(chain, U, V, x, masks, delta_masks):
        target, L = chain(x), len(chain.weights)

        def loss(S):
            def fn(n, a):
                if n in S:
                    return sol.masked_product(a, chain.weights[n], U[n], V[n], masks[n], delta_masks[n])
                return others(chain, U, V, masks, delta_masks, n, a)

            return (chain(x, fn) - target).pow(2).mean((0, 2)).sum()

        return loss(set(range(L))), sum(loss({n}) for n in range(L)) / L

    return recon


def test_the_other_matrices_of_a_layerwise_run_masked_too_are_named():
    zero = lambda c, U, V, m, d, n, a: sol.masked_product(
        a, c.weights[n], U[n], V[n], torch.zeros_like(m[n]), torch.zeros_like(d[n])
    )
    one = lambda c, U, V, m, d, n, a: sol.masked_product(a, c.weights[n], U[n], V[n], torch.ones_like(m[n]), d[n])
    for others, said in ((zero, "zero masks"), (one, "masks of 1")):
        failure = assert_fails(checks.test_stochastic_reconstruction_losses, _recon(others), "others_masked")
        assert said in failure.hint


def test_a_full_loss_summed_from_the_single_matrix_losses_is_named():
    def recon(chain, U, V, x, masks, delta_masks):
        _full, layerwise = sol.stochastic_reconstruction_losses(chain, U, V, x, masks, delta_masks)
        return layerwise * len(chain.weights), layerwise

    assert "not additive" in assert_fails(checks.test_stochastic_reconstruction_losses, recon, "full_is_sum").hint


def test_a_penalty_on_squared_importances_or_a_log_penalty_is_named():
    squared = lambda cis, p, eps=1e-12: sum((g.pow(2) + eps).pow(p).sum(-1) for g in cis).mean(0).sum()
    assert_fails(checks.test_importance_minimality_loss, squared, "squared_importances")
    log = lambda cis, p, eps=1e-12: sum((p * torch.log(g + eps)).sum(-1) for g in cis).mean(0).sum()
    assert_fails(checks.test_importance_minimality_loss, log, "log_penalty")
