"""Proofs for part 8's checkers, twenty-fourth file: the fresh26 measurement's cases. All-0 adversarial sources
(clamp(1, 0)) are described as constant, sources frozen at a bound are listed with the clamp-in-loss reading, terms
taken in another order are named as a reordering along k, a log of the faithfulness loss is named; new inputs catch
dropped zero-σ terms (rank-deficient W), the ablated matrix chosen by shape (a second matrix shaped like W_0) and N
counted as nonzero weights (weights with exact zeros); the instances counted twice in the faithfulness loss."""

from __future__ import annotations

import einops
import torch

import solutions.part8_parameter_decomposition as sol
import tests.part8_parameter_decomposition as checks
from tests.proving import assert_fails, assert_passes

EIN = "batch inst d_in, inst d_out d_in -> batch inst d_out"


def _ascent(update):
    def adversarial_sources(loss_fn, init, n_steps, step_size):
        src = [s.detach().clone() for s in init]
        for _ in range(n_steps):
            src = [s.requires_grad_(True) for s in src]
            gs = torch.autograd.grad(loss_fn(src), src)
            with torch.no_grad():
                src = [update(s, step_size * g.sign()) for s, g in zip(src, gs, strict=True)]
        return [s.detach() for s in src]

    return adversarial_sources


def test_swapped_clamp_bounds_are_described_as_constant_sources():
    fn = _ascent(lambda s, d: (s + d).clamp(1, 0))
    assert "clamp(1, 0)" in assert_fails(checks.test_adversarial_sources, fn, code="constant_sources").hint


def test_sources_frozen_at_a_bound_are_listed_and_the_correct_ascent_passes():
    frozen = _ascent(lambda s, d: torch.where((s > 0) & (s < 1), (s + d).clamp(0, 1), s))
    assert "frozen" in assert_fails(checks.test_adversarial_sources, frozen, code="clamp_in_loss").hint
    assert_passes(checks.test_adversarial_sources, _ascent(lambda s, d: (s + d).clamp(0, 1)))


def test_terms_sorted_before_ablating_are_a_reordering_along_k():
    def ablation_losses(chain, terms, x):
        order = terms.flatten(2).norm(dim=-1).mean(0).argsort(descending=True)
        return sol.ablation_losses(chain, terms[:, order], x)

    assert "`k` axis reordered" in assert_fails(checks.test_ablation_losses, ablation_losses, code="reordered").hint


def test_the_ablated_matrix_chosen_by_shape_is_named():
    def ablation_losses(chain, terms, x):
        full, out = chain(x), []
        for k in range(terms.shape[1]):
            Wa = chain.weights[0] - terms[:, k]
            pick = lambda n, Wa=Wa: Wa if chain.weights[n].shape == Wa.shape else chain.weights[n]
            out.append((chain(x, lambda n, a, pick=pick: einops.einsum(a, pick(n), EIN)) - full).pow(2).mean(-1))
        return einops.rearrange(torch.stack(out), "k batch inst -> inst k batch")

    assert "l == 0" in assert_fails(checks.test_ablation_losses, ablation_losses, code="ablated_by_shape").hint


def test_a_log_of_the_faithfulness_loss_is_named():
    def faithfulness_loss(weights, U, V):
        se = sum((W - u @ v).pow(2).sum((-2, -1)) for W, u, v in zip(weights, U, V, strict=True))
        return torch.log(se / sum(W[0].numel() for W in weights)).sum()

    assert "log(L_i)" in assert_fails(checks.test_faithfulness_loss, faithfulness_loss, code="log_loss").hint


def test_n_counted_as_nonzero_weights_is_caught_on_weights_with_zeros():
    def faithfulness_loss(weights, U, V):
        se = sum((W - u @ v).pow(2).sum((-2, -1)) for W, u, v in zip(weights, U, V, strict=True))
        return (se / sum(int(torch.count_nonzero(W[0])) for W in weights)).sum()

    assert "numel" in assert_fails(checks.test_faithfulness_loss, faithfulness_loss, code="nonzero_count").hint


def test_dropping_zero_singular_values_is_caught_on_a_rank_deficient_w():
    def svd_terms(W):
        U, S, Vh = torch.linalg.svd(W, full_matrices=False)
        keep = (1e-6 * S[:, :1] < S).all(0)
        return einops.einsum(U[..., keep], S[:, keep], Vh[:, keep], "i o r, i r, i r d -> i r o d")

    assert "min(d_out, d_in)" in assert_fails(checks.test_svd_terms, svd_terms, code="rank_truncated").hint


def test_instances_counted_twice_in_the_faithfulness_loss_are_named():
    def faithfulness_loss(weights, U, V):  # a total over every instance, then × n_inst as well
        total = sum((W - u @ v).pow(2).sum() for W, u, v in zip(weights, U, V, strict=True))
        return total / sum(W[0].numel() for W in weights) * weights[0].shape[0]

    hint = assert_fails(checks.test_faithfulness_loss, faithfulness_loss, code="instances_twice").hint
    assert "number of instances" in hint
