"""Proofs for part 8's checkers, ninth file: mistakes from the thirteenth fresh held-out measurement. A loss that is
no whole count away from the right one is only described, with its usual causes (no fitted divisor claimed); one
matrix's entries as N are named; a draw with point masses at the ends of [0, 1] says so (and names the clipped
normal whose shares they are); a mask shared by everything says so; masks that don't change the output are "not
used"; a count of SVD terms equal to n_inst, one instance's singular values used for all, parameters of the
importance MLPs in each other's places, and the hidden sum scaled by 1/√d_ci are named; a layerwise loss returned
per matrix, eps clamped in after the power, and steps of size 1 get their own hints."""

from __future__ import annotations

import math

import einops
import pytest
import torch
import torch.nn.functional as F

import solutions.part8_parameter_decomposition as ref
import tests.part8_parameter_decomposition as checks
from tests.proving import assert_fails, assert_passes

Lower, Upper = ref.LowerLeakyHardSigmoid, ref.UpperLeakyHardSigmoid


def ein(a, W):
    return einops.einsum(a, W, "batch inst d_in, inst d_out d_in -> batch inst d_out")


# --------------------------------------------------------------------------------------------
# faithfulness_loss
# --------------------------------------------------------------------------------------------
def faith_reduced(reduce):
    def impl(weights, U, V):
        sq = sum(reduce(W - u @ v).pow(2).sum() for W, u, v in zip(weights, U, V, strict=True))
        return sq / sum(W[0].numel() for W in weights)

    return impl


@pytest.mark.parametrize(("reduce", "how"), [(lambda d: d.mean(0), "averaged"), (lambda d: d.sum(0), "summed")])
def test_faithfulness_delta_reduced_over_instances_before_squaring_is_named(reduce, how):
    failure = assert_fails(checks.test_faithfulness_loss, faith_reduced(reduce), "reduced_before_square")
    assert f"{how} over the instances before squaring" in failure.hint


def test_faithfulness_ratio_that_is_no_whole_count_is_only_described():
    """A mean over each row before squaring: the ratio to the right loss is no count of the inputs, so no divisor
    is claimed; what was seen and the usual causes are."""
    failure = assert_fails(checks.test_faithfulness_loss, faith_reduced(lambda d: d.mean(-1)), "values")
    assert "another whole count than N = 49" in failure.hint and "before .pow(2)" in failure.hint
    assert "squared error divided by" not in failure.hint  # a non-whole ratio is no divisor (fresh20)


def test_faithfulness_first_matrix_size_as_n_is_named():
    def impl(weights, U, V):
        sq = sum((W - u @ v).pow(2).sum((-2, -1)) for W, u, v in zip(weights, U, V, strict=True))
        return (sq / weights[0][0].numel()).sum()

    failure = assert_fails(checks.test_faithfulness_loss, impl, "wrong_count")
    assert "divided by 10: the entries of the first matrix (weights[0][0].numel()) only" in failure.hint


# --------------------------------------------------------------------------------------------
# sample_masks
# --------------------------------------------------------------------------------------------
def masks_with(r_of):
    return lambda ci: ([g + (1 - g) * r_of(g) for g in ci], [torch.rand(g.shape[:-1], dtype=g.dtype) for g in ci])


def test_clipped_normal_is_named_by_its_point_masses():
    failure = assert_fails(
        checks.test_sample_masks, masks_with(lambda g: torch.randn_like(g).clamp(0, 1)), "point_masses"
    )
    assert "exactly 0 on 50%" in failure.message and "standard normal clipped" in failure.message
    assert "torch.rand_like(g)" in failure.hint


def test_other_clipped_draw_is_described_without_a_law():
    failure = assert_fails(
        checks.test_sample_masks, masks_with(lambda g: (2 * torch.rand_like(g) - 0.5).clamp(0, 1)), "point_masses"
    )
    assert "exactly 1 on 25%" in failure.message and "normal" not in failure.message
    assert "scaled or shifted" in failure.hint


def test_one_number_for_the_whole_mask_says_so():
    failure = assert_fails(checks.test_sample_masks, masks_with(lambda g: torch.rand(1)), "shared_over_batch")
    assert "example, instance and subcomponent" in failure.message and "torch.rand(1)" in failure.hint


def test_one_draw_per_example_names_instances_and_subcomponents():
    r_of = lambda g: torch.rand(g.shape[0], 1, 1)
    failure = assert_fails(checks.test_sample_masks, masks_with(r_of), "shared_over_components")
    assert "subcomponents and instances" in failure.message


def test_max_and_clamped_sum_keep_their_names():
    max_masks = lambda ci: ([torch.maximum(g, torch.rand_like(g)) for g in ci], [torch.rand(g.shape[:-1]) for g in ci])
    assert_fails(checks.test_sample_masks, max_masks, "max_not_interpolation")
    clamped = lambda ci: ([(g + torch.rand_like(g)).clamp(max=1) for g in ci], [torch.rand(g.shape[:-1]) for g in ci])
    assert_fails(checks.test_sample_masks, clamped, "not_uniform")


# --------------------------------------------------------------------------------------------
# masked_product
# --------------------------------------------------------------------------------------------
def test_masks_never_used_are_named():
    def impl(a, W, U, V, mask, delta_mask):
        return ein(a, W) + delta_mask[..., None] * ein(a, W - U @ V)

    failure = assert_fails(checks.test_masked_product, impl, "masks_unused")
    assert "`mask` is replaced" in failure.hint and "masks are not used" in failure.hint


def test_delta_mask_never_used_keeps_its_name():
    def impl(a, W, U, V, mask, delta_mask):
        inner = einops.einsum(a, V, "batch inst d_in, inst C d_in -> batch inst C")
        return einops.einsum(inner * mask, U, "batch inst C, inst d_out C -> batch inst d_out") + ein(a, W - U @ V)

    assert_fails(checks.test_masked_product, impl, "delta_unmasked")


# --------------------------------------------------------------------------------------------
# svd_terms
# --------------------------------------------------------------------------------------------
def test_term_count_from_min_over_all_axes_names_n_inst():
    def impl(W):
        U, S, Vh = torch.linalg.svd(W, full_matrices=False)
        terms = [S[:, k, None, None] * U[:, :, k, None] * Vh[:, None, k, :] for k in range(min(W.shape))]
        return torch.stack(terms, dim=1)

    failure = assert_fails(checks.test_svd_terms, impl, "term_count")
    assert "2 is n_inst" in failure.hint and "min(W.shape[-2:])" in failure.hint


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("inst d_out r, r, inst r d_in", "instance 0's singular values"),
        ("d_out r, inst r, inst r d_in", "instance 0's U"),
    ],
)
def test_one_instance_factor_for_all_is_named(spec, words):
    def impl(W):
        U, S, Vh = torch.linalg.svd(W, full_matrices=False)
        U, S = (U[0] if spec.startswith("d_out") else U), (S[0] if ", r," in spec else S)
        return einops.einsum(U, S, Vh, f"{spec} -> inst r d_out d_in")

    assert words in assert_fails(checks.test_svd_terms, impl, "one_instance_factor").hint


# --------------------------------------------------------------------------------------------
# CausalImportance
# --------------------------------------------------------------------------------------------
def ci_class(z_fn):
    def forward(self, a, V):
        h = einops.einsum(a, V, "batch inst d_in, inst C d_in -> batch inst C")
        z = z_fn(self, h)
        return Lower.apply(z, self.alpha), Upper.apply(z, self.alpha)

    return type("CI", (ref.CausalImportance,), {"forward": forward})


@pytest.mark.parametrize(
    ("z_fn", "pair"),
    [
        (lambda s, h: (F.gelu(h[..., None] * s.b_in + s.w_in) * s.w_out).sum(-1) + s.b_out, "w_in and b_in"),
        (lambda s, h: (F.gelu(h[..., None] * s.w_in + s.w_out) * s.b_in).sum(-1) + s.b_out, "b_in and w_out"),
    ],
)
def test_ci_parameters_in_each_others_places_are_named(z_fn, pair):
    assert pair in assert_fails(checks.test_causal_importance, ci_class(z_fn), "roles_swapped").hint


def test_ci_hidden_sum_scaled_by_init_factor_is_named():
    def z(self, h):
        hidden = (F.gelu(h[..., None] * self.w_in + self.b_in) * self.w_out).sum(-1)
        return hidden / math.sqrt(self.w_in.shape[-1]) + self.b_out

    failure = assert_fails(checks.test_causal_importance, ci_class(z), "sum_scaled")
    assert "1/√10 = 1/√d_ci" in failure.hint and "n_inst" not in failure.hint


def test_ci_whole_z_scaled_is_observed_and_mean_keeps_its_name():
    def z(self, h):
        return 0.7 * ((F.gelu(h[..., None] * self.w_in + self.b_in) * self.w_out).sum(-1) + self.b_out)

    failure = assert_fails(checks.test_causal_importance, ci_class(z), "sum_scaled")
    assert "z (b_out included) is 0.7 ×" in failure.hint and "constant factor" in failure.hint
    mean = lambda self, h: (F.gelu(h[..., None] * self.w_in + self.b_in) * self.w_out).mean(-1) + self.b_out
    assert_fails(checks.test_causal_importance, ci_class(mean), "mean_over_hidden")


# --------------------------------------------------------------------------------------------
# stochastic_reconstruction_losses, importance_minimality_loss, adversarial_sources
# --------------------------------------------------------------------------------------------
def recon_per_matrix(stack: bool):
    def impl(chain, U, V, x, masks, delta_masks):
        y = chain(x)

        def run(layers):
            fn = lambda n, a: (
                ref.masked_product(a, chain.weights[n], U[n], V[n], masks[n], delta_masks[n])
                if n in layers
                else ein(a, chain.weights[n])
            )
            return (chain(x, fn) - y).pow(2).mean((0, 2)).sum()

        per = [run({layer}) for layer in range(len(chain.weights))]
        return run(set(range(len(chain.weights)))), (torch.stack(per) if stack else per)

    return impl


@pytest.mark.parametrize("stack", [False, True])
def test_layerwise_losses_per_matrix_are_named(stack):
    failure = assert_fails(checks.test_stochastic_reconstruction_losses, recon_per_matrix(stack), "layerwise_list")
    assert "average the per-matrix losses into one scalar" in failure.hint


def test_eps_clamped_after_the_power_is_named_and_added_after_keeps_its_name():
    clamped = lambda ci, p, eps=1e-12: sum(g.pow(p).clamp(min=eps).sum(-1) for g in ci).mean(0).sum()
    failure = assert_fails(checks.test_importance_minimality_loss, clamped, "eps_after_power")
    assert "inside the power" in failure.hint and "clamp(min=eps)" in failure.hint
    added = lambda ci, p, eps=1e-12: sum((g.pow(p) + eps).sum(-1) for g in ci).mean(0).sum()
    assert_fails(checks.test_importance_minimality_loss, added, "eps_outside")


def test_step_size_inside_the_sign_is_named():
    def impl(loss_fn, init, n_steps, step_size):
        sources = [s.detach().clone() for s in init]
        for _ in range(n_steps):
            sources = [s.requires_grad_(True) for s in sources]
            grads = torch.autograd.grad(loss_fn(sources), sources)
            with torch.no_grad():
                sources = [(s + (step_size * g).sign()).clamp(0, 1) for s, g in zip(sources, grads, strict=True)]
        return [s.detach() for s in sources]

    failure = assert_fails(checks.test_adversarial_sources, impl, "unit_steps")
    assert "(step_size * g).sign()" in failure.hint


def test_correct_variants_still_pass():
    assert_passes(checks.test_sample_masks, masks_with(lambda g: torch.rand(g.numel(), dtype=g.dtype).view_as(g)))
    assert_passes(checks.test_masked_product, ref.masked_product)
    assert_passes(checks.test_causal_importance, ref.CausalImportance)
