"""Proofs for part 8's checkers, eleventh file: mistakes from the fifteenth fresh held-out measurement. Masks above 1
name the law their draws follow (g + 1 - g·r: parentheses dropped); the minimality penalty's inputs have C = 5 and
4 (Σ C = 9, no product of the other counts), so a division by the subcomponent count is named as such, and two
reductions swapped at once, one of them the mean over subcomponents, are named."""

from __future__ import annotations

import einops
import pytest
import torch

import solutions.part8_parameter_decomposition as ref
import tests.part8_parameter_decomposition as checks
from tests.proving import assert_fails, assert_passes


def ein(a, W):
    return einops.einsum(a, W, "batch inst d_in, inst d_out d_in -> batch inst d_out")


# --------------------------------------------------------------------------------------------
# sample_masks: the law of masks above 1
# --------------------------------------------------------------------------------------------
def test_masks_parentheses_dropped_name_the_precedence():
    def sample_masks(cis):
        return [g + 1 - g * torch.rand_like(g) for g in cis], [torch.rand(g.shape[:-1]) for g in cis]

    failure = assert_fails(checks.test_sample_masks, sample_masks, "above_one")
    assert "1 + g(1 - r)" in failure.hint and "parentheses" in failure.hint and "g + r can" not in failure.hint


def test_masks_g_plus_r_named():
    def sample_masks(cis):
        return [g + torch.rand_like(g) for g in cis], [torch.rand(g.shape[:-1]) for g in cis]

    assert "g + r can exceed 1" in assert_fails(checks.test_sample_masks, sample_masks, "above_one").hint


# --------------------------------------------------------------------------------------------
# importance_minimality_loss: the subcomponent count, reductions swapped together
# --------------------------------------------------------------------------------------------
def test_minimality_divided_by_the_subcomponent_count_is_named():
    def impl(cis, p, eps=1e-12):
        total_c = sum(g.shape[-1] for g in cis)
        return sum((g + eps).pow(p).sum(-1) for g in cis).mean(0).sum() / total_c

    failure = assert_fails(checks.test_importance_minimality_loss, impl, "scale")
    assert "subcomponents" in failure.hint and "instances" not in failure.hint and "1/9" in failure.hint


@pytest.mark.parametrize(
    ("impl", "words"),
    [
        (lambda cis, p, eps=1e-12: sum((g + eps).pow(p).mean(-1) for g in cis).sum(0).sum(), ["the batch"]),
        (lambda cis, p, eps=1e-12: (sum((g + eps).pow(p).mean(-1) for g in cis) / 2).mean(0).sum(), ["matrices"]),
        (lambda cis, p, eps=1e-12: sum((g + eps).pow(p).mean(-1) for g in cis).sum(0).mean(), ["batch", "inst"]),
    ],
)
def test_minimality_reductions_swapped_together_are_named(impl, words):
    failure = assert_fails(checks.test_importance_minimality_loss, impl, "reductions")
    assert "a mean over subcomponents" in failure.hint and all(w in failure.hint for w in words)


def test_minimality_reference_still_passes():
    assert_passes(checks.test_importance_minimality_loss, ref.importance_minimality_loss)


# --------------------------------------------------------------------------------------------
# svd_terms: an outer product broadcast along the wrong axes
# --------------------------------------------------------------------------------------------
def test_svd_misaligned_broadcast_is_named():
    def svd_terms(W):
        U, S, Vh = torch.linalg.svd(W, full_matrices=False)
        return (U * S[:, None, :]).unsqueeze(-1) * Vh.unsqueeze(-2)

    failure = assert_fails(checks.test_svd_terms, svd_terms, "broadcast_axes")
    assert ".unsqueeze(-1) * Vh.unsqueeze(-2)" in failure.hint and "U's d_out with Vh's r" in failure.hint


def test_svd_broadcast_correct_passes():
    def svd_terms(W):
        U, S, Vh = torch.linalg.svd(W, full_matrices=False)
        return (U * S[:, None, :]).mT.unsqueeze(-1) * Vh.unsqueeze(-2)

    assert_passes(checks.test_svd_terms, svd_terms)


# --------------------------------------------------------------------------------------------
# ablation_losses: the distance, the matrix rebuilt from the terms, a later matrix's input
# --------------------------------------------------------------------------------------------
def _ablation(
    reduce=lambda d: d.pow(2).mean(-1),
    first=lambda chain, terms, k: chain.weights[0] - terms[:, k],
    output=lambda chain, x, fn: chain(x, fn),
):
    def ablation_losses(chain, terms, x):
        original, out = output(chain, x, None), []
        for k in range(terms.shape[1]):
            Wk = first(chain, terms, k)
            fn = lambda layer, a, Wk=Wk: ein(a, Wk if layer == 0 else chain.weights[layer])
            out.append(reduce(output(chain, x, fn) - original))
        return einops.rearrange(torch.stack(out), "k batch inst -> inst k batch")

    return ablation_losses


@pytest.mark.parametrize(
    ("impl", "code", "words"),
    [
        (_ablation(reduce=lambda d: torch.linalg.vector_norm(d, dim=-1)), "distance", "Euclidean distance"),
        (_ablation(first=lambda chain, terms, k: terms.sum(1) - terms[:, k]), "rebuilt_from_terms", "add up to W_0"),
        (_ablation(output=lambda chain, x, fn: chain.run(x, fn)[1][-1]), "hidden_change", "chain.run(x)[1][2]"),
    ],
)
def test_ablation_fresh15_mistakes_are_named(impl, code, words):
    assert words in assert_fails(checks.test_ablation_losses, impl, code).hint


# --------------------------------------------------------------------------------------------
# CausalImportance and masked_product: a product of sums, the bias before the weight
# --------------------------------------------------------------------------------------------
def _ci(hidden, z):
    def forward(self, a, V):
        h = einops.einsum(a, V, "batch inst d_in, inst C d_in -> batch inst C")[..., None]
        out = z(self, hidden(self, h))
        return ref.LowerLeakyHardSigmoid.apply(out, self.alpha), ref.UpperLeakyHardSigmoid.apply(out, self.alpha)

    return type("CausalImportance", (ref.CausalImportance,), {"forward": forward})


_GELU = lambda self, h: torch.nn.functional.gelu(h * self.w_in + self.b_in)


@pytest.mark.parametrize(
    ("impl", "code"),
    [
        (_ci(_GELU, lambda self, hid: hid.sum(-1) * self.w_out.sum(-1) + self.b_out), "product_of_sums"),
        (
            _ci(
                lambda self, h: torch.nn.functional.gelu((h + self.b_in) * self.w_in),
                lambda self, hid: (hid * self.w_out).sum(-1) + self.b_out,
            ),
            "bias_before_weight",
        ),
    ],
)
def test_ci_fresh15_mistakes_are_named(impl, code):
    assert_fails(checks.test_causal_importance, impl, code)


def test_masked_product_of_sums_is_named():
    def masked_product(a, W, U, V, mask, delta_mask):
        inner = einops.einsum(a, V, "batch inst d_in, inst C d_in -> batch inst C")
        out = (inner * mask).sum(-1, keepdim=True) * U.sum(-1)
        return out + delta_mask[..., None] * ein(a, W - U @ V)

    assert (
        "summed over C each on its own"
        in assert_fails(checks.test_masked_product, masked_product, "product_of_sums").hint
    )


# --------------------------------------------------------------------------------------------
# stochastic_reconstruction_losses: layer_fn's parameters declared the other way round
# --------------------------------------------------------------------------------------------
def test_recon_layer_fn_arguments_swapped_are_named():
    def stochastic_reconstruction_losses(chain, U, V, x, masks, delta_masks):
        y, L = chain(x), len(chain.weights)

        def loss(layers):
            def layer_fn(a, l):  # noqa: E741 (the learner's names)
                if l in layers:
                    return ref.masked_product(a, chain.weights[l], U[l], V[l], masks[l], delta_masks[l])
                return ein(a, chain.weights[l])

            return (chain(x, layer_fn) - y).pow(2).mean((0, 2)).sum()

        return loss(set(range(L))), sum(loss({n}) for n in range(L)) / L

    failure = assert_fails(
        checks.test_stochastic_reconstruction_losses, stochastic_reconstruction_losses, "layer_fn_order"
    )
    assert "declare layer_fn(l, a)" in failure.hint and "`l` holds the activation" in failure.hint
