"""Proofs for part 8's checkers: outputs with axes reversed, ablation losses normalised or batch-centred, N counted
twice in the faithfulness loss, and mask draws sorted along C or clamped (the fresh28 measurement's cases)."""

from __future__ import annotations

import einops
import torch

import solutions.part8_parameter_decomposition as sol
import tests.part8_parameter_decomposition as checks
from tests.part8_parameter_decomposition_reorderings import axes_reordered
from tests.proving import assert_fails, assert_passes

EIN = "batch inst d_in, inst d_out d_in -> batch inst d_out"


# ---------------------------------------------------------------- svd_terms: a flip on the wrong axis
def svd_flip(*axes):
    def svd_terms(W):
        U, S, Vh = torch.linalg.svd(W, full_matrices=False)
        t = einops.einsum(U.flip(-1), S.flip(-1), Vh.flip(-2), "i o r, i r, i r d -> i r o d")  # ascending
        return t.flip(axes)

    return svd_terms


def test_instance_flip_where_the_term_flip_was_meant_is_named():
    hint = assert_fails(checks.test_svd_terms, svd_flip(0), code="axes_reversed").hint
    assert "`inst` (axis 0)" in hint and "`r` (axis 1)" in hint and "flip" in hint
    assert_passes(checks.test_svd_terms, svd_flip(1))  # ascending, flipped back: correct


def test_axes_reordered_names_the_axis_reversed_or_permuted():
    e = torch.arange(24.0).reshape(2, 3, 4)
    assert axes_reordered(e.flip(2), e, "a b c")[0] == "axes_reversed"
    assert "`b` (axis 1)" in axes_reordered(e[:, [1, 0, 2]], e, "a b c")[1]
    assert axes_reordered(e, e, "a b c") is None and axes_reordered(e + 1, e, "a b c") is None


# ---------------------------------------------------------------- ablation_losses: normalised, unit terms, centred
def ablation(first=lambda W0, T: W0 - T, reduce=lambda d, y: d.pow(2).mean(-1)):
    def ablation_losses(chain, terms, x):
        y, out = chain(x), []
        for k in range(terms.shape[1]):
            W = first(chain.weights[0], terms[:, k])
            run = chain(x, lambda n, a, W=W: einops.einsum(a, W if n == 0 else chain.weights[n], EIN))
            out.append(reduce(run - y, y))
        return torch.stack(out).permute(2, 0, 1)

    return ablation_losses


def test_relative_ablation_errors_are_named():
    for reduce in (
        lambda d, y: d.pow(2).mean(-1) / y.pow(2).mean(),
        lambda d, y: d.pow(2).mean(-1) / y.pow(2).mean((0, 2)),
    ):
        assert "relative" in assert_fails(checks.test_ablation_losses, ablation(reduce=reduce), code="relative").hint


def test_unit_norm_terms_are_named():
    unit = ablation(first=lambda W0, T: W0 - T / T.norm(dim=(-2, -1), keepdim=True))
    assert "T_k / ‖T_k‖" in assert_fails(checks.test_ablation_losses, unit, code="unit_term").hint


def test_batch_centred_change_is_named():
    centred = ablation(reduce=lambda d, y: (d - d.mean(0, keepdim=True)).pow(2).mean(-1))
    assert "variance" in assert_fails(checks.test_ablation_losses, centred, code="batch_centred").hint
    assert_passes(checks.test_ablation_losses, sol.ablation_losses)


# ---------------------------------------------------------------- faithfulness_loss: N counted twice
def test_doubled_count_is_listed_with_the_half_convention():
    def faithfulness_loss(weights, U, V):
        se = sum((W - u @ v).pow(2).sum((-2, -1)) for W, u, v in zip(weights, U, V, strict=True))
        n = sum(W[0].numel() + (u[0] @ v[0]).numel() for W, u, v in zip(weights, U, V, strict=True))
        return (se / n).sum()

    hint = assert_fails(checks.test_faithfulness_loss, faithfulness_loss, code="scale").hint
    assert hint.index("counted twice") < hint.index("½ MSE")


# ---------------------------------------------------------------- sample_masks: sorted or clamped draws
def masks(draw):
    def sample_masks(cis):
        return [g + (1 - g) * draw(g) for g in cis], [torch.rand(g.shape[:-1]) for g in cis]

    return sample_masks


def test_draws_sorted_along_c_are_named():
    assert_fails(checks.test_sample_masks, masks(lambda g: torch.rand_like(g).sort(-1).values), code="sorted_over_c")
    desc = masks(lambda g: torch.rand_like(g).sort(-1, descending=True).values)
    assert "descending" in assert_fails(checks.test_sample_masks, desc, code="sorted_over_c").message


def test_draws_clamped_are_named_and_a_correct_draw_passes():
    low = assert_fails(checks.test_sample_masks, masks(lambda g: torch.rand_like(g).clamp(min=0.1)), code="r_clamped")
    assert "piled up at 0.1" in low.message
    high = masks(lambda g: torch.rand_like(g).clamp(max=0.85))
    assert "above 0.85" in assert_fails(checks.test_sample_masks, high, code="r_clamped").message
    assert_passes(checks.test_sample_masks, sol.sample_masks)
