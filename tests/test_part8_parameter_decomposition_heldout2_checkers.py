"""Proofs for part 8's checkers, fourth file: mistakes from the fifth fresh held-out measurement, each named by a
generic diagnosis (a factor on one loss, one matrix's term, a law of the draws, an elementwise broadcast), and from
the ninth, named by behavioural probes (term sizes, the hidden activation, rescaled inputs, the span of the masks'
draws, masks scaled together, small gradients, step counts) or catalogue entries."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import solutions.part8_parameter_decomposition as ref
import tests.part8_parameter_decomposition as checks
from tests.proving import assert_fails, assert_passes
from tests.test_part8_parameter_decomposition_heldout_checkers import _sigmoid

Lower, Upper = ref.LowerLeakyHardSigmoid, ref.UpperLeakyHardSigmoid


def test_recon_full_divided_by_matrices_is_named():
    def impl(chain, U, V, x, masks, dms):
        full, layerwise = ref.stochastic_reconstruction_losses(chain, U, V, x, masks, dms)
        return full / len(chain.weights), layerwise

    assert_fails(checks.test_stochastic_reconstruction_losses, impl, "scale")


def test_minimality_last_matrix_only_is_named():
    def impl(ci, p, eps=1e-12):
        for g in ci:
            per_example = (g + eps).pow(p).sum(-1)
        return per_example.mean(0).sum()

    assert_fails(checks.test_importance_minimality_loss, impl, "one_matrix")


def test_masks_sigmoid_of_normal_lists_causes():
    def impl(ci):
        masks = [g + (1 - g) * torch.sigmoid(torch.randn_like(g)) for g in ci]
        return masks, [torch.rand_like(g[..., 0]) for g in ci]

    err = assert_fails(checks.test_sample_masks, impl, "not_uniform")
    assert "Possible causes" in str(err) and "independent uniform draws" not in str(err)


def test_masks_mean_of_two_draws_is_named():
    def impl(ci):
        masks = [g + (1 - g) * torch.rand(*g.shape, 2).mean(-1) for g in ci]
        return masks, [torch.rand_like(g[..., 0]) for g in ci]

    err = assert_fails(checks.test_sample_masks, impl, "not_uniform")
    assert "a mean of 2 independent uniform draws" in str(err)


def test_upper_sigmoid_zeroed_negative_gradients_is_named():
    Upper = _sigmoid(lambda x, alpha, g: (g * torch.where(x > 1, alpha, 1.0)).relu())
    err = assert_fails(checks.test_upper_leaky_hard_sigmoid, Upper, "slope_regions")
    assert "negative incoming gradients were zeroed" in str(err)


def test_masked_product_elementwise_clash_is_not_called_a_matmul():
    def impl(a, W, U, V, mask, delta_mask):
        inner = torch.einsum("bid,icd->bic", a, V)
        out = torch.einsum("bic,ioc->bio", inner * mask, U)
        return out + delta_mask[..., None, None] * torch.einsum("bid,iod->bio", a, W - U @ V)

    err = assert_fails(checks.test_masked_product, impl, "broadcast")
    assert "elementwise" in str(err) and "batched matmul" not in str(err)


# --------------------------------------------------------------------------------------------
# The ninth fresh held-out measurement: behavioural probes (tests.part8_parameter_decomposition_behaviour) and
# catalogue entries (tests.part8_parameter_decomposition_probes)
# --------------------------------------------------------------------------------------------
def ein(a, W):
    return torch.einsum("bid,iod->bio", a, W)


def svd_sized(size):
    def impl(W):
        U, S, Vh = torch.linalg.svd(W, full_matrices=False)
        return torch.einsum("iak,ik,ikb->ikab", U, size(S), Vh)

    return impl


@pytest.mark.parametrize(
    ("size", "named"),
    [(lambda S: 1 / S, "divided by the singular value"), (lambda S: S / S.sum(-1, keepdim=True), "sum to 1")],
)
def test_svd_term_sizes_are_named(size, named):
    assert named in assert_fails(checks.test_svd_terms, svd_sized(size), "term_size").hint


def test_svd_other_term_sizes_are_described():
    hint = assert_fails(checks.test_svd_terms, svd_sized(torch.exp), "not_sum").hint
    assert "right direction" in hint and "σ = " in hint


def test_ablation_baseline_from_the_terms_is_named():
    def impl(chain, terms, x):
        W_sum = terms.sum(1)
        original = chain(x, lambda layer, a: ein(a, W_sum if layer == 0 else chain.weights[layer]))
        out = []
        for k in range(terms.shape[1]):
            W = chain.weights[0] - terms[:, k]
            out.append(chain(x, lambda layer, a, W=W: ein(a, W if layer == 0 else chain.weights[layer])) - original)
        return torch.stack([d.pow(2).mean(-1) for d in out]).permute(2, 0, 1)

    assert_fails(checks.test_ablation_losses, impl, "baseline_from_terms")


def test_faithfulness_norms_added_before_squaring_is_named():
    def impl(weights, U, V):
        norms = sum(torch.linalg.matrix_norm(W - u @ v) for W, u, v in zip(weights, U, V, strict=True))
        return (norms.pow(2) / sum(W[0].numel() for W in weights)).sum()

    assert_fails(checks.test_faithfulness_loss, impl, "norms_summed")


def test_faithfulness_difference_of_squared_norms_is_named():
    def impl(weights, U, V):
        d = sum(W.pow(2).sum((-2, -1)) - (u @ v).pow(2).sum((-2, -1)) for W, u, v in zip(weights, U, V, strict=True))
        return (d / sum(W[0].numel() for W in weights)).sum()

    assert_fails(checks.test_faithfulness_loss, impl, "norm_difference")


def ci_with(activation=F.gelu, normalise_V=False):
    def forward(self, a, V):
        V = V / V.norm(dim=-1, keepdim=True) if normalise_V else V
        h = torch.einsum("bid,icd->bic", a, V)
        z = (activation(h[..., None] * self.w_in + self.b_in) * self.w_out).sum(-1) + self.b_out
        return Lower.apply(z, self.alpha), Upper.apply(z, self.alpha)

    return type("CausalImportance", (ref.CausalImportance,), {"forward": forward})


@pytest.mark.parametrize(
    ("activation", "named"),
    [(F.silu, "F.silu"), (lambda t: 0.5 * t * (1 + torch.erf(t / 2)), "√2 forgotten"), (torch.tanh, "torch.tanh")],
)
def test_ci_activation_is_named(activation, named):
    assert named in assert_fails(checks.test_causal_importance, ci_with(activation), "activation").hint


def test_ci_normalised_V_is_named():
    hint = assert_fails(checks.test_causal_importance, ci_with(normalise_V=True), "normalised_inputs").hint
    assert "V's rows" in hint


def test_ci_exact_gelu_by_hand_passes():
    assert_passes(checks.test_causal_importance, ci_with(lambda t: 0.5 * t * (1 + torch.erf(t / math.sqrt(2)))))


def masks_from(mask):
    return lambda ci: ([mask(g) for g in ci], [torch.rand_like(g[..., 0]) for g in ci])


def test_masks_bernoulli_is_named():
    failure = assert_fails(
        checks.test_sample_masks, masks_from(lambda g: torch.bernoulli(g.detach()) + 0 * g), "binary_mask"
    )
    assert "share of ones is its g" in str(failure)


def test_masks_midpoint_is_named_by_its_span():
    failure = assert_fails(checks.test_sample_masks, masks_from(lambda g: (g + torch.rand_like(g)) / 2), "mask_span")
    assert "[0.5·g, 0.5 + 0.5·g]" in str(failure) and "m = 0.5·g + 0.5·r" in failure.hint


def test_masks_g_applied_twice_is_named():
    def mask(g):
        r = g + (1 - g) * torch.rand_like(g)
        return g + (1 - g) * r

    assert "spans [g, 1]" in str(assert_fails(checks.test_sample_masks, masks_from(mask), "g_twice"))


def product(delta=lambda W, U, V: W - U @ V, mask=lambda m: m):
    def impl(a, W, U, V, m, dm):
        inner = torch.einsum("bid,icd->bic", a, V)
        out = torch.einsum("bic,ioc->bio", inner * mask(m), U)
        return out + dm[..., None] * ein(a, delta(W, U, V))

    return impl


def test_masked_product_transposed_W_is_named():
    failure = assert_fails(checks.test_masked_product, product(delta=lambda W, U, V: W.mT - U @ V), "broadcast")
    assert "transposes an operand (`.mT`)" in failure.hint and "W [inst d_out d_in]" in failure.hint


def test_masked_product_normalised_masks_are_named():
    assert_fails(checks.test_masked_product, product(mask=lambda m: m / m.sum(-1, keepdim=True)), "mask_normalised")


def recon(reduce=lambda d: d.pow(2).mean((0, 2)).sum(), cached=False):
    def impl(chain, U, V, x, masks, dms):
        target, inputs = chain.run(x)

        def loss(layers):
            def fn(layer, a):
                if layer not in layers:
                    return ein(a, chain.weights[layer])
                a = inputs[layer] if cached else a
                return ref.masked_product(a, chain.weights[layer], U[layer], V[layer], masks[layer], dms[layer])

            return reduce(chain(x, fn) - target)

        L = len(chain.weights)
        return loss(set(range(L))), sum(loss({layer}) for layer in range(L)) / L

    return impl


def test_recon_mean_error_squared_is_named():
    impl = recon(reduce=lambda d: d.mean((0, 2)).pow(2).sum())
    assert_fails(checks.test_stochastic_reconstruction_losses, impl, "mean_then_square")


def test_recon_unmasked_activations_are_named():
    assert_fails(checks.test_stochastic_reconstruction_losses, recon(cached=True), "unmasked_inputs")


def test_minimality_eps_in_exponent_is_named():
    def impl(ci, p, eps=1e-12):
        return sum(g.pow(p + eps).sum(-1) for g in ci).mean(0).sum()

    assert_fails(checks.test_importance_minimality_loss, impl, "eps_in_exponent")


def ascent(stop_when_lower=False, threshold=0.0):
    def impl(loss_fn, init, n_steps, step_size):
        sources, previous = [s.detach().clone() for s in init], -float("inf")
        for _ in range(n_steps):
            sources = [s.requires_grad_(True) for s in sources]
            loss = loss_fn(sources)
            if stop_when_lower and loss.item() < previous:
                break
            previous = loss.item()
            grads = torch.autograd.grad(loss, sources)
            with torch.no_grad():
                steps = [step_size * g.sign() * (g.abs() > threshold) for g in grads]
                sources = [(s + d).clamp(0, 1) for s, d in zip(sources, steps, strict=True)]
        return [s.detach() for s in sources]

    return impl


def test_adversarial_early_stop_lists_step_counts():
    failure = assert_fails(checks.test_adversarial_sources, ascent(stop_when_lower=True), "step_count")
    assert "1 or 3 or 5 steps" in failure.hint and "stops early" in failure.hint


def test_adversarial_thresholded_sign_is_named():
    failure = assert_fails(checks.test_adversarial_sources, ascent(threshold=1e-2), "small_gradient")
    assert "between 1e-02 and 1e-01" in failure.hint
