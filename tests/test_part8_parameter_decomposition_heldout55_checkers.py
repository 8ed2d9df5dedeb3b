"""Proofs for part 8 after held-out round BB (fresh55).

* leaky hard sigmoids: a backward that edits grad_output in place (grad_output[x > 1] = 0; grad_output[x < 0] *= alpha)
  passed; the checker now calls it with the caller's grad_outputs and with out.sum() (an expanded grad_output, where
  the edit zeroes every entry), `grad_output_in_place`. heldout4's LowerInPlace, proven accepted until now, is
  the same mistake (its x.grad after out.sum().backward() is all 0): that proof now expects the new code.
* svd_terms: a hard-coded count (the two largest terms: [:, :2], the TMS W's rank) was blamed on the instance axis
  (2 = n_inst on the first input); the function runs on a W where no size is that count, `fixed_term_count`.
* ablation_losses: the terms removed from the last matrix raised a size error with the generic size-clash hint; a
  clash between a term's size and a size only another chain matrix has is named (`ablated_layer`).
* ablation_losses: a layer_fn that also applies the activation (ablated runs), or a baseline run through a layer_fn
  that adds the bias, gave the formula; the bias, the activation or both inside layer_fn, at the first or every
  matrix, in the ablated runs, the baseline or both, with the matrix's activation or a ReLU everywhere, are named
  (`layer_fn_extra`).
* faithfulness_loss: N counted as Σ d_out · d_out ("divided by 74") and the instances divided out twice (N over
  every instance and a mean over them: 1/9) gave a bare number; divisors built from the sizes otherwise (a size
  squared, one size alone, sums multiplied, over every instance) and the 1/m² factor are named (`wrong_count`,
  `instances_divided_twice`).
* importance_minimality_loss: a signature written (ci, eps, p) (Σ (g + p)^eps) and the first example's penalty
  where the batch mean belongs gave the formula; they are named (`p_eps_swapped`, `one_example`).
* adversarial_sources: a step along g / max|g| got the off-lattice list of causes; the gradient over its largest
  entry (per source or over all), the L2 norm of all sources together or its mean |entry| is named
  (`scaled_gradient`).
* The round's correct variants pass.
"""

from __future__ import annotations

import einops
import torch
import torch.nn.functional as F
from torch import Tensor

import tests.part8_parameter_decomposition as checks
from tests.part8_parameter_decomposition_slips import learner_sigmoid
from tests.proving import assert_fails, assert_passes


def _mm(a, W):
    return einops.einsum(a, W, "batch inst d_in, inst d_out d_in -> batch inst d_out")


# ---------------------------------------------------------------- leaky hard sigmoids
def _lower_in_place(x, alpha, g):
    g[x > 1] = 0
    g[x < 0] *= alpha
    return g


def _upper_in_place(x, alpha, g):
    return g.mul_(torch.where(x > 1, alpha, (x >= 0).to(x.dtype)))


def test_sigmoid_backward_editing_grad_output_is_named():
    lower = learner_sigmoid(_lower_in_place)
    failure = assert_fails(checks.test_lower_leaky_hard_sigmoid, lower, "grad_output_in_place")
    assert "grad_output * slope" in failure.hint
    assert_fails(checks.test_upper_leaky_hard_sigmoid, learner_sigmoid(_upper_in_place), "grad_output_in_place")


def test_sigmoid_backward_on_a_clone_passes():
    def lower(x, alpha, g):
        g = g.clone()
        g[x > 1] = 0
        g[x < 0] *= alpha
        return g

    assert_passes(checks.test_lower_leaky_hard_sigmoid, learner_sigmoid(lower))


# ---------------------------------------------------------------- svd_terms
def _svd_top_two(W):
    U, S, Vh = torch.linalg.svd(W, full_matrices=False)
    return einops.einsum(U[..., :2], S[..., :2], Vh[..., :2, :], "i o r, i r, i r d -> i r o d")


def test_svd_terms_hard_coded_count_is_named():
    failure = assert_fails(checks.test_svd_terms, _svd_top_two, "fixed_term_count")
    assert "[:, :2]" in failure.hint


# ---------------------------------------------------------------- ablation_losses
def _ablate_last_matrix(chain, terms, x):
    original, out = chain(x), []
    for k in range(terms.shape[1]):
        W = chain.weights[-1] - terms[:, k]
        fn = lambda layer, a, W=W: _mm(a, W if layer == len(chain.weights) - 1 else chain.weights[layer])
        out.append((chain(x, fn) - original).pow(2).mean(-1))
    return torch.stack(out).permute(2, 0, 1)


def test_ablation_of_another_matrix_is_named():
    failure = assert_fails(checks.test_ablation_losses, _ablate_last_matrix, "ablated_layer")
    assert "chain.weights[0] - terms[:, k]" in failure.hint


def _ablation_with(ablated_fn, base_fn=None):
    """Ablation losses with the ablated runs through ablated_fn(W0)(l, a), the baseline through base_fn(W0)."""

    def impl(chain, terms, x):
        original = chain(x) if base_fn is None else chain(x, base_fn(chain, chain.weights[0]))
        out = [
            (chain(x, ablated_fn(chain, chain.weights[0] - terms[:, k])) - original).pow(2).mean(-1)
            for k in range(terms.shape[1])
        ]
        return torch.stack(out).permute(2, 0, 1)

    return impl


def _relu_first(chain, W0):
    return lambda layer, a: F.relu(_mm(a, W0)) if layer == 0 else _mm(a, chain.weights[layer])


def _plain(chain, W0):
    return lambda layer, a: _mm(a, W0 if layer == 0 else chain.weights[layer])


def _with_bias(chain, W0):
    return lambda layer, a: _mm(a, W0 if layer == 0 else chain.weights[layer]) + chain.biases[layer]


def test_ablation_layer_fn_doing_the_layer_is_named():
    failure = assert_fails(checks.test_ablation_losses, _ablation_with(_relu_first), "layer_fn_extra")
    assert "applies the matrix's activation at the first matrix" in failure.hint
    failure = assert_fails(checks.test_ablation_losses, _ablation_with(_plain, _with_bias), "layer_fn_extra")
    assert "baseline y_original is not chain(x)" in failure.hint
    failure = assert_fails(checks.test_ablation_losses, _ablation_with(_whole_layer, _whole_layer), "layer_fn_extra")
    assert "both runs" in failure.hint and "F.relu" in failure.hint


def _whole_layer(chain, W0):
    """Every layer re-implemented inside layer_fn with a ReLU (the chain's second matrix has a GELU)."""
    return lambda layer, a: F.relu(_mm(a, W0 if layer == 0 else chain.weights[layer]) + chain.biases[layer])


# ---------------------------------------------------------------- faithfulness_loss
def _faith(count, reduce=lambda per_instance: per_instance.sum()):
    def impl(weights, U, V):
        squared = sum((W - u @ v).pow(2).sum((-2, -1)) for W, u, v in zip(weights, U, V, strict=True))
        return reduce(squared / sum(count(W) for W in weights))

    return impl


def test_faithfulness_counts_from_the_sizes_are_named():
    failure = assert_fails(checks.test_faithfulness_loss, _faith(lambda W: W.shape[-2] * W.shape[-2]), "wrong_count")
    assert "d_out · d_out" in failure.hint
    failure = assert_fails(
        checks.test_faithfulness_loss, _faith(lambda W: W.numel(), Tensor.mean), "instances_divided_twice"
    )
    assert "1/m²" in failure.hint


# ---------------------------------------------------------------- importance_minimality_loss
def _min_args_swapped(cis, eps, p=1e-12):
    return sum((g + eps).pow(p).sum(-1) for g in cis).mean(0).sum()


def _min_first_example(cis, p, eps=1e-12):
    return sum((g + eps).pow(p).sum(-1) for g in cis)[0].sum()


def test_minimality_swapped_arguments_and_one_example_are_named():
    failure = assert_fails(checks.test_importance_minimality_loss, _min_args_swapped, "p_eps_swapped")
    assert "p before eps" in failure.hint
    failure = assert_fails(checks.test_importance_minimality_loss, _min_first_example, "one_example")
    assert "per_example[0]" in failure.hint


# ---------------------------------------------------------------- adversarial_sources
def _adv_max_scaled(loss_fn, init, n_steps, step_size):
    sources = [s.detach().clone() for s in init]
    for _ in range(n_steps):
        sources = [s.requires_grad_(True) for s in sources]
        grads = torch.autograd.grad(loss_fn(sources), sources)
        with torch.no_grad():
            pairs = zip(sources, grads, strict=True)
            sources = [(s + step_size * g / (g.abs().max() + 1e-12)).clamp(0, 1) for s, g in pairs]
    return [s.detach() for s in sources]


def test_adversarial_gradient_over_its_max_is_named():
    failure = assert_fails(checks.test_adversarial_sources, _adv_max_scaled, "scaled_gradient")
    assert "largest |entry| per source" in failure.hint
