"""Proofs for part 8's checkers, eighth file: mistakes from the twelfth fresh held-out measurement. Every checker
passes its own inputs and compares them with private copies right after the call, so an input edited in place is
named before any value is computed from it (`W -= term` in a deflation loop, `delta = W; delta -= U @ V`,
`a.mul_(mask)`); a shape (1,) where a scalar belongs lists what builds one; an output axis of another input's size
names that input; an instance's output that moves with another instance's inputs is named; a size error in the
reconstruction losses names the inputs with those sizes; `.grad` read as None says whether the tensor is a leaf."""

from __future__ import annotations

import warnings

import einops
import torch

import solutions.part8_parameter_decomposition as ref
import tests.part8_parameter_decomposition as checks
from tests.proving import assert_fails, assert_passes


def ein(a, W):
    return einops.einsum(a, W, "batch inst d_in, inst d_out d_in -> batch inst d_out")


# --------------------------------------------------------------------------------------------
# In-place edits of the inputs
# --------------------------------------------------------------------------------------------
def svd_deflation(in_place: bool):
    def impl(W):
        R, terms = (W if in_place else W.clone()), []
        for _ in range(min(W.shape[-2:])):
            U, S, Vh = torch.linalg.svd(R, full_matrices=False)
            t = S[:, 0, None, None] * U[:, :, 0, None] * Vh[:, 0, None, :]
            terms.append(t)
            if in_place:
                R -= t
            else:
                R = R - t
        return torch.stack(terms, dim=1)

    return impl


def test_svd_deflation_in_place_is_named_and_on_a_copy_passes():
    failure = assert_fails(checks.test_svd_terms, svd_deflation(True), "in_place")
    assert "`W`" in failure.message and "R = W.clone()" in failure.hint
    assert_passes(checks.test_svd_terms, svd_deflation(False))


def test_faithfulness_alias_edit_is_named_not_a_divisor():
    def impl(weights, U, V):
        total = 0
        for W, u, v in zip(weights, U, V, strict=True):
            delta = W
            delta -= u @ v
            total = total + delta.pow(2).sum((-2, -1))
        return (total / sum(W[0].numel() for W in weights)).sum()

    failure = assert_fails(checks.test_faithfulness_loss, impl, "in_place")
    assert "`weights[0]`" in failure.message and "y = x; y -= z" in failure.hint


def test_masked_product_activation_scaled_in_place_is_named():
    def impl(a, W, U, V, mask, delta_mask):
        out = einops.einsum(einops.einsum(a, V, "b i d, i c d -> b i c") * mask, U, "b i c, i o c -> b i o")
        a.mul_(delta_mask[..., None])
        return out + ein(a, W - U @ V)

    assert "`a`" in assert_fails(checks.test_masked_product, impl, "in_place").message


class CIScalesA(ref.CausalImportance):
    def forward(self, a, V):
        a /= a.norm(dim=-1, keepdim=True)
        return super().forward(a, V)


def test_ci_input_normalised_in_place_is_named():
    assert "`a`" in assert_fails(checks.test_causal_importance, CIScalesA, "in_place").message


def test_recon_input_edited_in_place_is_named():
    def impl(chain, U, V, x, masks, dms):
        out = ref.stochastic_reconstruction_losses(chain, U, V, x, masks, dms)
        x.clamp_(0, 0.5)
        return out

    assert "`x`" in assert_fails(checks.test_stochastic_reconstruction_losses, impl, "in_place").message

    def first_replaced(chain, U, V, x, masks, dms):
        out = ref.stochastic_reconstruction_losses(chain, U, V, x, masks, dms)
        chain.weights[0] = U[0] @ V[0]
        return out

    failure = assert_fails(checks.test_stochastic_reconstruction_losses, first_replaced, "in_place")
    assert "`chain.weights[0]`" in failure.message


# --------------------------------------------------------------------------------------------
# A shape (1,) where a scalar belongs
# --------------------------------------------------------------------------------------------
def test_minimality_one_element_accumulator_lists_the_causes():
    def impl(cis, p, eps):
        total = torch.zeros(1)
        for g in cis:
            total += (g + eps).pow(p).sum(-1).mean(0).sum()
        return total

    failure = assert_fails(checks.test_importance_minimality_loss, impl, "not_scalar")
    assert "one value is right" in failure.message and "torch.zeros(1)" in failure.hint
    assert "reduce over every axis" not in failure.hint


def test_faithfulness_and_recon_one_element_list_the_causes():
    one = lambda *args: ref.faithfulness_loss(*args).reshape(1)
    assert "torch.zeros(1)" in assert_fails(checks.test_faithfulness_loss, one, "not_scalar").hint
    pair = lambda *args: tuple(t.reshape(1, 1) for t in ref.stochastic_reconstruction_losses(*args))
    failure = assert_fails(checks.test_stochastic_reconstruction_losses, pair, "not_scalar")
    assert "(1, 1)" in failure.message


# --------------------------------------------------------------------------------------------
# An output axis of another input's size; an instance's output that moves with another instance's inputs
# --------------------------------------------------------------------------------------------
def test_ablation_loop_over_instances_names_the_instances():
    def impl(chain, terms, x):
        original, out = chain(x), []
        for k in range(terms.shape[0]):
            fn = lambda layer, a, k=k: ein(a, chain.weights[0] - terms[:, k] if layer == 0 else chain.weights[layer])
            out.append((chain(x, fn) - original).pow(2).mean(-1))
        return einops.rearrange(torch.stack(out), "k batch inst -> inst k batch")

    failure = assert_fails(checks.test_ablation_losses, impl, "axis_size")
    assert "the number of instances (terms.shape[0]" in failure.message and "terms.shape[1]" in failure.message


def test_masked_product_uv_summed_over_instances_is_named():
    def impl(a, W, U, V, mask, delta_mask):
        out = einops.einsum(einops.einsum(a, V, "b i d, i c d -> b i c") * mask, U, "b i c, i o c -> b i o")
        return out + delta_mask[..., None] * ein(a, W - torch.einsum("ioc,icd->od", U, V))

    failure = assert_fails(checks.test_masked_product, impl, "mixes_instances")
    assert "`U`, `V`" in failure.hint and "drops `inst`" in failure.hint


# --------------------------------------------------------------------------------------------
# Errors raised in the learner's code
# --------------------------------------------------------------------------------------------
def test_recon_chain_input_at_a_later_matrix_names_the_sizes():
    def impl(chain, U, V, x, masks, dms):
        target, n = chain(x), len(chain.weights)

        def loss(masked):
            def fn(layer, a):
                if layer in masked:
                    args = (chain.weights[layer], U[layer], V[layer], masks[layer], dms[layer])
                    return ref.masked_product(x, *args)
                return ein(a, chain.weights[layer])

            return (chain(x, fn) - target).pow(2).mean((0, 2)).sum()

        return loss(set(range(n))), sum(loss({layer}) for layer in range(n)) / n

    failure = assert_fails(checks.test_stochastic_reconstruction_losses, impl, "input_sizes")
    assert "matrix l = 1" in failure.hint and "not x" in failure.hint


def test_adversarial_update_outside_no_grad_names_the_non_leaf():
    def impl(loss_fn, init, n_steps, step_size):
        sources = [s.detach().clone().requires_grad_(True) for s in init]
        for _ in range(n_steps):
            loss_fn(sources).backward()
            sources = [(s + step_size * s.grad.sign()).clamp(0, 1) for s in sources]
        return [s.detach() for s in sources]

    with warnings.catch_warnings():  # torch warns about the non-leaf .grad on the way to the error
        warnings.simplefilter("ignore", UserWarning)
        failure = assert_fails(checks.test_adversarial_sources, impl, "grad_none")
    assert "not a leaf" in failure.hint and "torch.no_grad()" in failure.hint
