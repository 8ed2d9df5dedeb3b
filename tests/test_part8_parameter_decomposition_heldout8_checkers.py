"""Proofs for part 8's checkers, tenth file: mistakes from the fourteenth fresh held-out measurement. A changed
requires_grad (or .grad) on an input is named like an in-place edit; a function that must be deterministic and
returns other values on a second call is named random; the list of sources returned inside a tuple with another
value is named; an elementwise clash whose operand holds another input's axis names the input used in place of the
one meant (V where U belongs); one SVD term kept, a max or min over instances, and the matrices' importances
combined before the power get their own hints."""

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
# adversarial_sources
# --------------------------------------------------------------------------------------------
def _ascent(sources, loss_fn, n_steps, step_size):
    for _ in range(n_steps):
        for s in sources:
            s.requires_grad_(True)
        grads = torch.autograd.grad(loss_fn(sources), sources)
        with torch.no_grad():
            sources = [(s + step_size * g.sign()).clamp(0, 1) for s, g in zip(sources, grads, strict=True)]
    return [s.detach() for s in sources]


def test_adversarial_requires_grad_set_on_the_callers_init_is_named():
    """`sources = init`, then requires_grad_ on each: the values stay, the caller's tensors now require grad."""
    failure = assert_fails(
        checks.test_adversarial_sources, lambda f, init, n, step: _ascent(init, f, n, step), "input_flags"
    )
    assert "init[0]" in failure.message and "requires_grad is now True, was False" in failure.message
    assert "s = x.detach().clone().requires_grad_()" in failure.hint


def test_adversarial_own_leaves_pass():
    assert_passes(
        checks.test_adversarial_sources,
        lambda f, init, n, step: _ascent([s.detach().clone() for s in init], f, n, step),
    )


@pytest.mark.parametrize("first", [True, False])
def test_adversarial_sources_returned_with_the_loss_is_named(first):
    def impl(loss_fn, init, n_steps, step_size):
        sources = ref.adversarial_sources(loss_fn, init, n_steps, step_size)
        loss = loss_fn(sources).detach()
        return (sources, loss) if first else (loss, sources)

    failure = assert_fails(checks.test_adversarial_sources, impl, "extra_value")
    assert "return only the list of sources (an extra value was returned" in failure.hint


# --------------------------------------------------------------------------------------------
# masked_product
# --------------------------------------------------------------------------------------------
def test_masked_product_drawing_its_own_delta_mask_is_named_random():
    def impl(a, W, U, V, mask, dm):
        return ref.masked_product(a, W, U, V, mask, torch.rand_like(dm))

    failure = assert_fails(checks.test_masked_product, impl, "random_output")
    assert "called twice on the same inputs" in failure.message and "mask and delta_mask it is given" in failure.hint


def test_masked_product_filling_the_inputs_grad_is_named():
    def impl(a, W, U, V, mask, dm):
        (U @ V).sum().backward()  # a backward inside: the caller's U and V collect gradients
        return ref.masked_product(a, W, U, V, mask, dm)

    failure = assert_fails(checks.test_masked_product, impl, "input_flags")
    assert ".grad was filled or changed" in failure.message and "torch.autograd.grad" in failure.hint


def test_masked_product_back_up_with_V_names_the_operand_and_the_input():
    def impl(a, W, U, V, mask, dm):
        inner = einops.einsum(a, V, "batch inst d_in, inst C d_in -> batch inst C")
        out = einops.einsum(inner * mask, V, "batch inst C, inst C d_in -> batch inst d_in")
        return out + dm[..., None] * ein(a, W - U @ V)

    failure = assert_fails(checks.test_masked_product, impl, "broadcast")
    assert "`out` on the failing line has shape (6, 3, 5) [batch inst d_in]" in failure.hint
    assert "another tensor than the one meant (V [inst C d_in] where U [inst d_out C] belongs)" in failure.hint
    assert "more or fewer axes" not in failure.hint


def test_masked_product_inline_operand_lists_another_tensor_among_the_causes():
    """No named operand to read on the failing line: the swap is listed among the causes."""

    def impl(a, W, U, V, mask, dm):
        inner = einops.einsum(a, V, "batch inst d_in, inst C d_in -> batch inst C")
        return einops.einsum(inner * mask, V, "b i C, i C d -> b i d") + dm[..., None] * ein(a, W - U @ V)

    failure = assert_fails(checks.test_masked_product, impl, "broadcast")
    assert "more or fewer axes" in failure.hint
    assert "or an operand computed from another tensor than the one meant (" in failure.hint
    assert "V [inst C d_in] where U [inst d_out C] belongs" in failure.hint


# --------------------------------------------------------------------------------------------
# svd_terms, faithfulness_loss, importance_minimality_loss
# --------------------------------------------------------------------------------------------
def test_svd_only_the_top_term_kept_is_named():
    def impl(W):
        U, S, Vh = torch.linalg.svd(W, full_matrices=False)
        return einops.einsum(U[..., :1], S[:, :1], Vh[:, :1], "i o r, i r, i r d -> i r o d")

    failure = assert_fails(checks.test_svd_terms, impl, "one_term")
    assert "your one term is the top term" in failure.message and "only one term kept" in failure.hint


@pytest.mark.parametrize(("reduce", "word"), [("max", "largest"), ("min", "smallest")])
def test_faithfulness_extreme_instance_is_named(reduce, word):
    def impl(weights, U, V):
        sq = sum((W - u @ v).pow(2).sum((-2, -1)) for W, u, v in zip(weights, U, V, strict=True))
        return getattr(sq / sum(W[0].numel() for W in weights), reduce)()

    # an index of that instance gives the same value: both are listed (one_instance first)
    failure = assert_fails(checks.test_faithfulness_loss, impl, "one_instance")
    assert f"the {word} instance's loss" in failure.hint and f".{reduce}() over the instances" in failure.hint


@pytest.mark.parametrize("combine", [lambda cis: torch.stack(cis).sum(0), lambda cis: cis[0] + cis[1]])
def test_minimality_matrices_combined_before_the_power_is_named(combine):
    def impl(cis, p, eps=1e-12):
        return (combine(cis) + eps).pow(p).sum(-1).mean(0).sum()

    failure = assert_fails(checks.test_importance_minimality_loss, impl, "matrices_combined")
    assert "sums g^p over the matrices" in failure.hint and "Σ_l Σ_c (g_lc + eps)^p" in failure.hint


def test_faithfulness_without_the_square_claims_no_divisor():
    # fresh15: Σ(W - U V) / N, the square forgotten: the ratio to the right loss is a large near-whole number by
    # chance (22034 in the measurement), which a relative tolerance alone took for a count
    def faithfulness_loss(weights, U, V):
        error = sum((W - U_l @ V_l).sum((-2, -1)) for W, U_l, V_l in zip(weights, U, V, strict=True))
        return (error / sum(W[0].numel() for W in weights)).sum()

    # the one-change search names the square left out (it found nothing before comprehensions with tuple targets
    # were handled); no count is claimed either way
    failure = assert_fails(checks.test_faithfulness_loss, faithfulness_loss, "one_change")
    assert "a step left out (`.pow(…)`)" in failure.hint and "divided by" not in failure.hint
