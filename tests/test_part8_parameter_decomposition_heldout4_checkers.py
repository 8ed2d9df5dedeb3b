"""Proofs for part 8's checkers, sixth file: mistakes from the eighth fresh held-out measurement. The ablation chain's
sizes now all differ (d_in 4, widths 2 and 8, d_out 7), so a count taken from d_in and a matrix used at another layer
show; the rest are named by probes (two calls of sample_masks, a loss with a zero gradient) or catalogue entries."""

from __future__ import annotations

import einops
import pytest
import torch
import torch.nn.functional as F

import solutions.part8_parameter_decomposition as ref
import tests.part8_parameter_decomposition as checks
from tests.proving import assert_fails

Lower, Upper = ref.LowerLeakyHardSigmoid, ref.UpperLeakyHardSigmoid


def ein(a, W):
    return einops.einsum(a, W, "batch inst d_in, inst d_out d_in -> batch inst d_out")


# --------------------------------------------------------------------------------------------
# svd_terms: r last, then reshaped (on the square input the shape is right)
# --------------------------------------------------------------------------------------------
def test_svd_r_last_then_reshaped_names_the_order():
    def impl(W):
        U, S, Vh = torch.linalg.svd(W, full_matrices=False)
        t = einops.einsum(U, S, Vh, "inst d_out r, inst r, inst r d_in -> inst d_out d_in r")
        return t.reshape(W.shape[0], S.shape[-1], W.shape[1], W.shape[2])

    failure = assert_fails(checks.test_svd_terms, impl, "axis_order")
    assert "[inst d_out d_in r]" in failure.hint and "reshape" in failure.hint


# --------------------------------------------------------------------------------------------
# ablation_losses: d_in ≠ d_out, the layer index
# --------------------------------------------------------------------------------------------
def ablation(reduce=lambda d, x: d.pow(2).mean(-1), first=0):
    def impl(chain, terms, x):
        original, out = chain(x), []
        for k in range(terms.shape[1]):
            W = chain.weights[0] - terms[:, k]
            f = lambda layer, a, W=W: ein(a, W if layer == first else chain.weights[layer])
            out.append(reduce(chain(x, f) - original, x))
        return einops.rearrange(torch.stack(out), "k batch inst -> inst k batch")

    return impl


def test_ablation_divided_by_d_in_is_named():
    failure = assert_fails(
        checks.test_ablation_losses, ablation(reduce=lambda d, x: d.pow(2).sum(-1) / x.shape[-1]), "wrong_count"
    )
    assert "x.shape[-1]" in failure.hint and "d_out = 7" in failure.hint


def test_ablation_divided_by_the_batch_is_named():
    failure = assert_fails(
        checks.test_ablation_losses, ablation(reduce=lambda d, x: d.pow(2).sum(-1) / x.shape[0]), "wrong_count"
    )
    assert "the batch" in failure.hint


@pytest.mark.parametrize(("axis", "lost"), [(1, "`inst`"), (0, "`batch`")])
def test_ablation_mean_over_another_axis_is_named(axis, lost):
    failure = assert_fails(
        checks.test_ablation_losses, ablation(reduce=lambda d, x: d.pow(2).mean(axis)), "reduced_wrong_axis"
    )
    assert lost in failure.message and "d_out = 7" in failure.message


def test_ablation_matrix_at_layer_one_is_named():
    failure = assert_fails(checks.test_ablation_losses, ablation(first=1), "ablated_layer")
    assert "l == 1" in failure.hint and "l == 0" in failure.hint


def test_ablation_compared_with_input_is_named_from_the_sizes():
    def vs_input(chain, terms, x):
        y = chain(x, lambda layer, a: ein(a, chain.weights[0] - terms[:, 0] if layer == 0 else chain.weights[layer]))
        return (y - x).pow(2).mean(-1)

    failure = assert_fails(checks.test_ablation_losses, vs_input, "vs_input")
    assert "chain(x)" in failure.hint


# --------------------------------------------------------------------------------------------
# faithfulness_loss: one instance
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("i", [0, 2])
def test_faithfulness_one_instance_is_named(i):
    def impl(weights, U, V):
        N = sum(W[0].numel() for W in weights)
        return sum((W[i] - u[i] @ v[i]).pow(2).sum() for W, u, v in zip(weights, U, V, strict=True)) / N

    failure = assert_fails(checks.test_faithfulness_loss, impl, "one_instance")
    assert f"instance {i}'s loss alone" in failure.hint


# --------------------------------------------------------------------------------------------
# leaky hard sigmoids: grad_output edited in place (named since round BB), grad_output multiplied twice
# --------------------------------------------------------------------------------------------
class _Fwd(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, alpha=0.01):
        ctx.save_for_backward(x)
        ctx.alpha = alpha
        return x.clamp(0, 1)


class LowerInPlace(_Fwd):
    """grad_output edited in place and returned. Accepted until round BB: out.sum().backward() hands backward ones
    expanded from one value, where these writes zero every entry (x.grad all 0), so it is named since."""

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        g[x < 0] *= ctx.alpha
        g[x > 1] = 0
        return g, None


class UpperGradTwice(_Fwd):
    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * torch.where(x > 1, ctx.alpha * g, (x >= 0).to(x.dtype)), None


def test_lower_grad_output_edited_in_place_is_named():
    assert_fails(checks.test_lower_leaky_hard_sigmoid, LowerInPlace, "grad_output_in_place")


def test_upper_grad_output_twice_is_named():
    failure = assert_fails(checks.test_upper_leaky_hard_sigmoid, UpperGradTwice, "grad_output_twice")
    assert "multiplied in twice" in failure.hint and "changes with x" not in failure.hint


# --------------------------------------------------------------------------------------------
# CausalImportance: w_in after the GELU
# --------------------------------------------------------------------------------------------
def test_ci_w_in_after_gelu_is_named():
    def forward(self, a, V):
        h = einops.einsum(a, V, "batch inst d_in, inst C d_in -> batch inst C")
        z = (F.gelu(h[..., None] + self.b_in) * self.w_in * self.w_out).sum(-1) + self.b_out
        return Lower.apply(z, self.alpha), Upper.apply(z, self.alpha)

    impl = type("CI", (ref.CausalImportance,), {"forward": forward})
    assert_fails(checks.test_causal_importance, impl, "w_in_after_gelu")


# --------------------------------------------------------------------------------------------
# sample_masks: a seed inside, the delta mask's shape from the wrong end
# --------------------------------------------------------------------------------------------
def test_masks_seeded_inside_are_named():
    def impl(ci):
        torch.manual_seed(0)
        return [g + (1 - g) * torch.rand_like(g) for g in ci], [torch.rand(g.shape[:-1]) for g in ci]

    assert_fails(checks.test_sample_masks, impl, "same_every_call")


def test_masks_delta_seeded_generator_is_named():
    def impl(ci):
        gen = torch.Generator().manual_seed(1)
        deltas = [torch.rand(g.shape[:-1], generator=gen) for g in ci]
        return [g + (1 - g) * torch.rand_like(g) for g in ci], deltas

    failure = assert_fails(checks.test_sample_masks, impl, "same_every_call")
    assert "delta masks" in failure.message


@pytest.mark.parametrize(("shape", "said"), [(lambda g: g.shape[1:], "g.shape[1:]"), (lambda g: g.shape, "g.shape,")])
def test_masks_delta_shape_slip_is_named(shape, said):
    def impl(ci):
        return [g + (1 - g) * torch.rand_like(g) for g in ci], [torch.rand(shape(g)) for g in ci]

    failure = assert_fails(checks.test_sample_masks, impl, "delta_shape")
    assert said in failure.message


# --------------------------------------------------------------------------------------------
# masked_product: one example's (or instance's) masks for all
# --------------------------------------------------------------------------------------------
def product(mask_fn=lambda m: m, dm_fn=lambda d: d):
    def impl(a, W, U, V, mask, delta_mask):
        inner = einops.einsum(a, V, "batch inst d_in, inst C d_in -> batch inst C") * mask_fn(mask)
        out = einops.einsum(inner, U, "batch inst C, inst d_out C -> batch inst d_out")
        return out + dm_fn(delta_mask)[..., None] * ein(a, W - U @ V)

    return impl


@pytest.mark.parametrize(
    ("impl", "code"),
    [
        (product(mask_fn=lambda m: m[0]), "mask_first_example"),
        (product(mask_fn=lambda m: m[:, :1]), "mask_first_instance"),
        (product(dm_fn=lambda d: d[:1].expand_as(d)), "delta_mask_first_example"),
    ],
)
def test_product_first_slice_masks_are_named(impl, code):
    assert_fails(checks.test_masked_product, impl, code)


# --------------------------------------------------------------------------------------------
# stochastic_reconstruction_losses: an activation in layer_fn, instances summed before squaring
# --------------------------------------------------------------------------------------------
def recon(loss=lambda d: d.pow(2).mean((0, 2)).sum(), wrap=lambda layer, t: t):
    def impl(chain, U, V, x, masks, dms):
        target, L = chain(x), len(chain.weights)

        def run(layers):
            def f(layer, a):
                if layer in layers:
                    return wrap(
                        layer, ref.masked_product(a, chain.weights[layer], U[layer], V[layer], masks[layer], dms[layer])
                    )
                return wrap(layer, ein(a, chain.weights[layer]))

            return loss(chain(x, f) - target)

        return run(set(range(L))), sum(run({layer}) for layer in range(L)) / L

    return impl


@pytest.mark.parametrize(
    ("impl", "code"),
    [
        (recon(wrap=lambda layer, t: F.relu(t)), "activation_in_layer_fn"),
        (recon(loss=lambda d: d.sum(1).pow(2).mean()), "instances_summed_first"),
    ],
)
def test_recon_fresh8_mistakes_are_named(impl, code):
    assert_fails(checks.test_stochastic_reconstruction_losses, impl, code)


# --------------------------------------------------------------------------------------------
# importance_minimality_loss: operator precedence
# --------------------------------------------------------------------------------------------
def test_minimality_precedence_is_named():
    impl = lambda ci, p, eps=1e-12: sum((g + eps**p).sum(-1) for g in ci).mean(0).sum()
    assert_fails(checks.test_importance_minimality_loss, impl, "precedence")


# --------------------------------------------------------------------------------------------
# adversarial_sources: a zero gradient, the loss read at clamp(r)
# --------------------------------------------------------------------------------------------
def adversarial(direction=torch.sign, loss_at=lambda t: t, project=True):
    def impl(loss_fn, init, n_steps, step_size):
        s = [t.detach().clone() for t in init]
        for _ in range(n_steps):
            s = [t.requires_grad_(True) for t in s]
            grads = torch.autograd.grad(loss_fn([loss_at(t) for t in s]), s)
            with torch.no_grad():
                s = [t + step_size * direction(g) for t, g in zip(s, grads, strict=True)]
                s = [t.clamp(0, 1) for t in s] if project else s
        return [t.detach().clamp(0, 1) for t in s]

    return impl


@pytest.mark.parametrize(
    ("impl", "code"),
    [
        (adversarial(direction=lambda g: g / g.abs()), "nan_at_zero_gradient"),
        (adversarial(direction=lambda g: torch.where(g >= 0, 1.0, -1.0)), "moves_at_zero_gradient"),
        (adversarial(loss_at=lambda t: t.clamp(0, 1), project=False), "clamp_in_loss"),
    ],
)
def test_adversarial_fresh8_mistakes_are_named(impl, code):
    assert_fails(checks.test_adversarial_sources, impl, code)
